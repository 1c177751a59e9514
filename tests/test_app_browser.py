"""The app in a real browser (Debian's chromium driven by Playwright): upload a photo, analyse
it, switch the backend, compare backends; screenshots at desktop and phone widths go to
``test-artifacts/``. The page must make no request outside this machine.

Skipped when chromium or Playwright is missing (``apt-get install chromium``,
``pip install playwright``; Playwright's own browser download is not needed).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="Playwright is not installed: pip install playwright")

from artifacts import make_tflite  # noqa: E402
from conftest import REPO, build_tiny_keras  # noqa: E402
from emotion_edge.app.ui import EXAMPLES_DIR, build_app, launch, make_service  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions"]
SCREENSHOTS = REPO / "test-artifacts"
PHOTO = EXAMPLES_DIR / "grace_hopper.jpg"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)),
                                reason=f"chromium not found at {CHROMIUM}: "
                                       "apt-get install -y chromium")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = build_tiny_keras()
    make_tflite(folder / "tiny.int8.tflite", model, "int8")
    make_tflite(folder / "tiny.fp16.tflite", model, "fp16")
    service = make_service(models_dir=folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(build_app(service, report=None), port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        service.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


def _open(browser, url: str, width: int, height: int, outside: list[str]):
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    host = urlparse(url).netloc

    def watch(request) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.netloc != host:
            outside.append(request.url)

    page.on("request", watch)
    page.goto(url)
    page.locator("#ee-analyze").wait_for()
    return page


def _analyze(page, photo: Path) -> str:
    page.locator("#ee-photo input[type=file]").set_input_files(str(photo))
    page.locator("#ee-photo img").first.wait_for()
    page.locator("#ee-analyze").click()
    page.locator("#ee-cards .ee-card").first.wait_for()
    page.locator("#ee-annotated img").first.wait_for()
    return page.locator("#ee-status").inner_text()


def _choose_backend(page, title: str) -> None:
    page.locator("#ee-backend input").click()
    page.get_by_role("option", name=title, exact=True).click()
    page.locator("#ee-backend-status", has_text=title).wait_for()


def test_desktop_upload_analyse_switch_backend_and_compare(browser, app_url):
    SCREENSHOTS.mkdir(exist_ok=True)
    outside: list[str] = []
    page = _open(browser, app_url, 1280, 900, outside)
    page.locator("#ee-backend-status", has_text="TFLite int8").wait_for()

    status = _analyze(page, PHOTO)
    assert "1 face" in status and "TFLite int8" in status
    assert page.locator("#ee-cards .ee-row").count() == 7
    page.screenshot(path=str(SCREENSHOTS / "app-desktop.png"), full_page=True)

    _choose_backend(page, "TFLite fp16")
    page.locator("#ee-analyze").click()
    page.locator("#ee-status", has_text="TFLite fp16").wait_for()

    page.get_by_role("tab", name="Compare").click()
    page.locator("#ee-compare-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#ee-compare-photo img").first.wait_for()
    page.locator("#ee-compare-run").click()
    page.locator("#ee-compare-status", has_text="backends").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "app-desktop-compare.png"), full_page=True)

    page.get_by_role("tab", name="About the model").click()
    page.locator("#ee-model-card", has_text="Labels").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "app-desktop-about.png"), full_page=True)
    page.close()
    assert outside == [], f"the page reached outside this machine: {outside}"


def test_phone_upload_and_analyse(browser, app_url):
    SCREENSHOTS.mkdir(exist_ok=True)
    outside: list[str] = []
    page = _open(browser, app_url, 390, 844, outside)
    status = _analyze(page, EXAMPLES_DIR / "astronaut.jpg")
    assert "face" in status
    page.screenshot(path=str(SCREENSHOTS / "app-phone.png"), full_page=True)
    page.close()
    assert outside == [], f"the page reached outside this machine: {outside}"
