"""The import drawing is a contract: ``lint-imports`` checks pyproject's import-linter contracts.

grimp (import-linter's graph builder) only walks a top-level package's own folder, and our
stages live beside ``emotion_edge/`` (setuptools ``package-dir``), so the test lays the sources
out as the wheel does, in a temporary folder, and runs ``lint-imports`` against that copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def stage_wheel_layout(dest: Path) -> Path:
    """Copy every package's ``.py`` files to ``dest`` as the wheel installs them."""
    line = re.search(r"^package-dir = \{(.*)\}$", (REPO / "pyproject.toml").read_text(), re.M)
    assert line, "pyproject.toml: expected package-dir on one line"
    for package, folder in re.findall(r'"([\w.]+)" = "(\w+)"', line.group(1)):
        for source in (REPO / folder).rglob("*.py"):
            target = dest.joinpath(*package.split("."), source.relative_to(REPO / folder))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def lint_imports(tree: Path, *args: str) -> subprocess.CompletedProcess:
    # lint-imports puts its working folder first on sys.path: run it in the copy, not the repo.
    config = str(REPO / "pyproject.toml")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", config, *args], cwd=tree,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    return stage_wheel_layout(tmp_path_factory.mktemp("layout"))


def test_import_contracts_hold(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout


def test_an_arrow_that_runs_up_breaks_the_layers_contract(tree, tmp_path):
    broken = stage_wheel_layout(tmp_path)
    (broken / "emotion_edge" / "runtime" / "upward.py").write_text(
        "from emotion_edge.benchmarks import report  # noqa: F401\n")
    result = lint_imports(broken, "--contract", "layers")
    assert result.returncode == 1
    assert "emotion_edge.runtime.upward -> emotion_edge.benchmarks.report" in result.stdout
