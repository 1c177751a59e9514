"""Every ```python block of README.md and app/README.md runs as written.

Each block runs in a fresh interpreter, in a folder holding the photos the blocks name
(``photo.jpg``, ``grace_hopper.jpg``: copies of the app's examples). Blocks that call the app
through ``gradio_client`` get the app, on the bundled models, at the address they name.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "app/README.md")
APP_URL = ("127.0.0.1", 7860)


def python_blocks(doc: str) -> list[str]:
    text = (REPO / doc).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


BLOCKS = [pytest.param(doc, i, code, id=f"{doc}#{i + 1}")
          for doc in DOCS for i, code in enumerate(python_blocks(doc))]


def test_the_docs_have_python_blocks():
    assert {p.values[0] for p in BLOCKS} == set(DOCS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    examples = REPO / "app" / "examples"
    shutil.copy(examples / "grace_hopper.jpg", folder / "photo.jpg")
    shutil.copy(examples / "grace_hopper.jpg", folder / "grace_hopper.jpg")
    return folder


@pytest.fixture(scope="module")
def app_server():
    """The app on the bundled models at ``APP_URL``, where the docs' client blocks call it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    pytest.importorskip("gradio")
    with socket.socket() as sock:
        if sock.connect_ex(APP_URL) == 0:
            pytest.skip(f"port {APP_URL[1]} is taken; the docs' client blocks call the app there")
    from emotion_edge.app.ui import build_app, launch, make_service

    service = make_service()
    demo = launch(build_app(service, report=None), host=APP_URL[0], port=APP_URL[1],
                  block=False, quiet=True)
    yield
    demo.close()
    service.close()


@pytest.mark.parametrize("doc, index, code", BLOCKS)
def test_python_block_runs_as_written(doc, index, code, workdir, request):
    if "gradio_client" in code:
        request.getfixturevalue("app_server")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{doc} block {index + 1} failed:\n{result.stderr[-3000:]}"
    if "recognizer.analyze" in code or "/predict" in code:
        assert re.search(r"\b(angry|disgust|fear|happy|sad|surprise|neutral)\b", result.stdout)
