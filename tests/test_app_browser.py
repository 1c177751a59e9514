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

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="Playwright is not installed: pip install playwright")

from artifacts import make_tflite  # noqa: E402
from conftest import REPO, build_tiny_keras  # noqa: E402
from emotion_edge.app.fps import recorded_frames  # noqa: E402
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
    """The app as `make demo` serves it: the bundled models (tiny ones if none is bundled)."""
    from emotion_edge.runtime.bundled import bundled_models

    folder = None
    if not bundled_models():
        folder = tmp_path_factory.mktemp("models")
        model = build_tiny_keras()
        make_tflite(folder / "tiny.int8.tflite", model, "int8")
        make_tflite(folder / "tiny.fp16.tflite", model, "fp16")
    service = make_service(models_dir=folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = REPO / "reports" / "benchmark.json"
    demo = launch(build_app(service, report=report if report.is_file() else None), port=port,
                  block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        service.close()


@pytest.fixture(scope="module")
def playwright():
    with playwright_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory):
    context = playwright.chromium.launch_persistent_context(
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


def _open_tab(page, name: str) -> None:
    """Click tab ``name``; on a narrow screen it may sit in the "More tabs" menu."""
    tab = page.get_by_role("tab", name=name)
    if not tab.is_visible():
        page.get_by_role("button", name="More tabs").click()
        page.locator("button:visible", has_text=name).last.click()
    else:
        tab.click()


def _choose_backend(page, title: str) -> None:
    """Pick the one menu entry whose title holds ``title`` (with several bundled models the
    entries read "default · TFLite fp16")."""
    page.locator("#ee-backend input").click()
    options = page.get_by_role("option", name=title)
    assert options.count() == 1, f"{options.count()} menu entries match {title!r}"
    options.click()
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

    page.get_by_role("tab", name="About").click()
    page.locator("#ee-model-card", has_text="Labels").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "app-desktop-about.png"), full_page=True)
    page.close()
    assert outside == [], f"the page reached outside this machine: {outside}"


#: The words under an element that are broken across lines (a word whose text has more
#: than one box on screen).
_BROKEN_WORDS = """(root) => {
    const broken = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode;
        for (const match of node.data.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const boxes = [...range.getClientRects()].filter((box) => box.width > 0);
            if (boxes.length > 1) broken.push(match[0]);
        }
    }
    return broken;
}"""


def test_phone_upload_analyse_compare_and_about(browser, app_url):
    SCREENSHOTS.mkdir(exist_ok=True)
    outside: list[str] = []
    page = _open(browser, app_url, 390, 844, outside)
    status = _analyze(page, EXAMPLES_DIR / "astronaut.jpg")
    assert "face" in status
    page.screenshot(path=str(SCREENSHOTS / "app-phone.png"), full_page=True)
    # a new photo clears the previous photo's results
    page.get_by_role("button", name="Remove Image").first.click()
    page.locator("#ee-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#ee-cards .ee-card").first.wait_for(state="detached")
    playwright_api.expect(page.locator("#ee-status")).to_have_text("")

    _open_tab(page, "Compare")
    page.locator("#ee-compare-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#ee-compare-photo img").first.wait_for()
    page.locator("#ee-compare-run").click()
    page.locator("#ee-compare-status", has_text="backends").wait_for()
    assert page.locator("#ee-compare-table").evaluate(_BROKEN_WORDS) == []
    page.screenshot(path=str(SCREENSHOTS / "app-phone-compare.png"), full_page=True)

    _open_tab(page, "About")
    page.locator("#ee-model-card", has_text="Labels").wait_for()
    assert "%" in page.locator("#ee-model-card").inner_text()
    if page.locator("#ee-bench-table").count():
        assert page.locator("#ee-bench-table").evaluate(_BROKEN_WORDS) == []
    if page.locator("#ee-bench-plot img").count():
        plot = page.locator("#ee-bench-plot img").first.bounding_box()
        block = page.locator("#ee-bench-plot").bounding_box()
        # readable: not shrunk to the screen, and scrolled from its left edge, not centred
        assert plot["width"] >= 720 and plot["x"] >= block["x"]
    page.screenshot(path=str(SCREENSHOTS / "app-phone-about.png"), full_page=True)
    _open_tab(page, "Webcam")
    assert "needs a camera" in page.locator("#ee-webcam-note").inner_text()
    page.close()
    assert outside == [], f"the page reached outside this machine: {outside}"


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """RGB frames as a Y4M video (YUV 4:2:0), which chromium plays as a fake camera."""
    height, width = frames[0].shape[:2]

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            r, g, b = (frame[..., i].astype(np.float32) for i in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            fh.write(b"FRAME\n")
            for plane in (y, half(u), half(v)):
                fh.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return path


def test_webcam_stream_with_a_fake_camera(playwright, app_url, tmp_path):
    SCREENSHOTS.mkdir(exist_ok=True)
    video = write_y4m(tmp_path / "camera.y4m", recorded_frames(PHOTO, count=20))
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=args, headless=True,
        viewport={"width": 1280, "height": 900})
    try:
        context.grant_permissions(["camera"], origin=app_url.rstrip("/"))
        outside: list[str] = []
        page = _open(context, app_url, 1280, 900, outside)
        page.get_by_role("tab", name="Webcam").click()
        page.get_by_text("Click to Access Webcam").click()
        page.get_by_role("button", name="capture photo").click()
        page.locator("#ee-live-status", has_text="ms per frame").wait_for()
        page.locator("#ee-live img").first.wait_for()
        # a face, labelled: the stream's first frame may come before the camera's first
        # picture (seen under load as "No face in view"), so wait for a labelled frame
        labelled = page.locator("#ee-live-status", has_text="%")
        labelled.wait_for(timeout=30_000)
        assert "ms per frame" in labelled.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "app-desktop-webcam.png"))
        page.close()
    finally:
        context.close()
    assert outside == [], f"the page reached outside this machine: {outside}"
