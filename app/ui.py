"""The Gradio page: Image, Webcam, Compare and About tabs over one backend menu.

``make_service`` finds the models, ``build_app`` lays out the page and wires it to the
service, ``launch`` serves it on localhost with a local theme (no fonts or scripts from
outside). Every error becomes a warning toast and a status line, never a stack trace.
Named endpoints ``/predict`` and ``/compare`` serve ``gradio_client`` callers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from functools import wraps
from importlib.resources import files
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402  (analytics must be off before the import)

from ..runtime.errors import EmotionEdgeError  # noqa: E402
from .catalog import (  # noqa: E402
    DEFAULT_DETECTOR,
    DETECTORS,
    bundled_paths,
    default_choice,
    find_models,
)
from .model_card import MODEL_HEADERS, read_benchmark  # noqa: E402
from .render import CARDS_CSS, face_cards_html  # noqa: E402
from .service import COMPARE_HEADERS, AppService  # noqa: E402
from .serving import release_free_memory, without_server_paths  # noqa: E402
from .video_tab import live_stream, video_tab  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(str(files("emotion_edge.app") / "examples"))
EXAMPLE_PHOTOS = ("grace_hopper.jpg", "astronaut.jpg", "nasa_astronaut_class.jpg")
DEFAULT_REPORT = Path("reports") / "benchmark.json"

PAGE_CSS = CARDS_CSS + """
.gradio-container { max-width: 1200px !important; width: 100% !important; margin: 0 auto; }
@media (max-width: 480px) {
  .gradio-container > .main { padding-left: 10px !important; padding-right: 10px !important; }
}
#ee-status p { margin: 0; }
/* Tables on a phone: words stay whole and the table scrolls sideways instead. */
#ee-compare-table .text, #ee-bench-table .text, #ee-models-table .text {
  word-break: normal !important; overflow-wrap: normal !important; hyphens: none; }
#ee-compare-table .table-wrap, #ee-bench-table .table-wrap, #ee-models-table .table-wrap {
  overflow-x: auto; }
/* The benchmark plot keeps a readable size and scrolls sideways on a narrow screen. */
#ee-bench-plot, #ee-bench-plot .image-container, #ee-bench-plot .image-frame {
  height: auto !important; }
#ee-bench-plot .image-container { overflow-x: auto; display: block; }
#ee-bench-plot .image-container > button { display: block; width: max(100%, 720px); }
#ee-bench-plot img { width: 100%; height: auto; max-width: none; }
"""


def make_service(models: Sequence[str | os.PathLike] | None = None, *,
                 models_dir: str | os.PathLike | None = None,
                 model: str | os.PathLike | None = None,
                 threads: int | None = None) -> AppService:
    """The app's backend menu: ``models`` or the artifacts in ``models_dir`` (default: the
    bundled models), plus ``model``, which is selected first."""
    names = [*(models or []), *([model] if model is not None else [])]
    if models is None and models_dir is None:
        names = [*bundled_paths(), *names]
    choices = find_models(names, models_dir=models_dir)
    if not choices:
        raise EmotionEdgeError("no models found: pass --model PATH or --models-dir DIR "
                               "(a folder of .tflite/.onnx/.keras files with their sidecars)")
    return AppService(choices, default_choice(choices, model), threads=threads)


def _message(exc: Exception) -> str:
    """What the page says about ``exc``: paths on the server are cut to file names."""
    if isinstance(exc, EmotionEdgeError):
        return without_server_paths(str(exc))
    log.exception("unexpected error in the app")
    return without_server_paths(f"unexpected error ({type(exc).__name__}: {exc}); "
                                "see the server log")


def _shielded(on_error: Callable[[str], Any]) -> Callable:
    """Run a handler; an error becomes a warning toast and ``on_error(message)``. Memory the
    handler freed is handed back to the system when it is done."""
    def decorate(handler: Callable) -> Callable:
        @wraps(handler)
        def run(*args: Any) -> Any:
            try:
                return handler(*args)
            except Exception as exc:  # noqa: BLE001  the page must show it, not a traceback
                message = _message(exc)
                gr.Warning(message)
                return on_error(message)
            finally:
                release_free_memory()
        return run
    return decorate


def build_app(service: AppService, *, report: str | os.PathLike | None = DEFAULT_REPORT,
              title: str = "emotion-edge") -> gr.Blocks:
    """The page for ``service``; ``report`` is the benchmark report shown under About."""
    menu = [(c.label, c.key) for c in service.choices]
    selected = service.default.key if service.default else service.choices[0].key

    # Gradio's copies of uploads and answers older than an hour are deleted every 10 minutes.
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {title}\nFacial emotion recognition on the edge: "
                    f"{service.emotions()} emotions, every face found, on the model and "
                    "backend of your choice.")
        with gr.Row(equal_height=True):
            # Each menu in its own column, so they stack on a phone instead of squeezing.
            with gr.Column(min_width=240):
                backend = gr.Dropdown(menu, value=selected, label="Model and backend",
                                      elem_id="ee-backend")
            with gr.Column(min_width=240):
                detector = gr.Dropdown([(f"{k} ({v})", k) for k, v in DETECTORS.items()],
                                       value=DEFAULT_DETECTOR, label="Face detector",
                                       elem_id="ee-detector")
        backend_status = gr.Markdown(elem_id="ee-backend-status")

        with gr.Tab("Image", id="image"):
            _image_tab(service, backend, detector)
        with gr.Tab("Webcam", id="webcam"):
            _webcam_tab(service, backend, detector)
        with gr.Tab("Video", id="video"):
            video_tab(service, backend, detector, _shielded)
        with gr.Tab("Compare", id="compare"):
            _compare_tab(service, backend, detector)
        with gr.Tab("About", id="about"):
            card, sidecar = _about_tab(service, report)

        @_shielded(lambda message: (f"⚠️ {message}", f"⚠️ {message}", {}))
        def on_backend(key: str, detector_name: str) -> tuple[str, str, dict]:
            text, data = service.model_card(key)
            return service.load(key, detector_name), text, data

        for trigger in (backend.change, demo.load):
            trigger(on_backend, [backend, detector], [backend_status, card, sidecar],
                    api_visibility="private")
        # Engines are looked up again on each visit, so the menu says what can run now.
        demo.load(lambda: gr.update(choices=[(c.label, c.key) for c in service.choices]),
                  None, backend, api_visibility="private", queue=False)
    return demo


def _image_tab(service: AppService, backend: gr.Dropdown, detector: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column(min_width=300):
            image = gr.Image(type="filepath", sources=["upload", "clipboard"],
                             label="Photo", height=360, elem_id="ee-photo")
            run = gr.Button("Analyze", variant="primary", elem_id="ee-analyze")
        with gr.Column(min_width=300):
            annotated = gr.Image(label="Faces", interactive=False, height=360, format="jpeg",
                                 elem_id="ee-annotated")
            status = gr.Markdown(elem_id="ee-status")
            cards = gr.HTML(elem_id="ee-cards")
            with gr.Accordion("Result as JSON", open=False):
                details = gr.JSON(label="Result")
    # Below both columns, so on a phone the results come right after the button.
    gr.Examples([[str(EXAMPLES_DIR / name)] for name in EXAMPLE_PHOTOS], [image],
                label="Example photos")
    gr.Markdown("Example photos: U.S. Navy (Grace Hopper), NASA (Eileen Collins; an "
                "astronaut class). Public domain.")

    @_shielded(lambda message: (None, "", f"⚠️ {message}", {"error": message}))
    def predict(photo: Any, key: str, detector_name: str) -> tuple[Any, str, str, dict]:
        result = service.analyze(photo, key, detector_name)
        return (service.results.save(result.image), face_cards_html(result.faces),
                result.summary(), result.to_dict())

    # preprocess=False hands our reader the uploaded file, so a file that is not an image
    # gets our message rather than Gradio's.
    run.click(predict, [image, backend, detector], [annotated, cards, status, details],
              api_name="predict", preprocess=False)
    # A new photo clears the previous photo's results.
    image.change(lambda: (None, "", "", None), None, [annotated, cards, status, details],
                 api_visibility="private", queue=False, show_progress="hidden")


def _webcam_tab(service: AppService, backend: gr.Dropdown, detector: gr.Dropdown) -> None:
    gr.Markdown("Allow the camera; frames are analysed as they arrive. This needs a camera "
                "on the device showing this page: without one (or without permission) this "
                "tab stays empty; use the Image or Video tab instead.",
                elem_id="ee-webcam-note")
    with gr.Row():
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                          elem_id="ee-camera")
        live = gr.Image(label="Live", interactive=False, elem_id="ee-live")
    live_status = gr.Markdown(elem_id="ee-live-status")
    tracks = gr.State(None)  # this viewer's face tracks (stream mode)
    camera.stream(live_stream(service), [camera, backend, detector, tracks],
                  [live, live_status, tracks],
                  stream_every=0.1,
                  concurrency_limit=4, show_progress="hidden", api_name="stream",
                  api_visibility="undocumented")


def _compare_tab(service: AppService, backend: gr.Dropdown, detector: gr.Dropdown) -> None:
    gr.Markdown("One photo through every backend: the largest face's label, confidence and "
                "warm classification latency. Labels are compared only between models with "
                "the same classes.")
    with gr.Row():
        with gr.Column(min_width=300, scale=1):
            photo = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Photo",
                             height=300, elem_id="ee-compare-photo")
            run = gr.Button("Compare backends", variant="primary", elem_id="ee-compare-run")
            gr.Examples([[str(EXAMPLES_DIR / EXAMPLE_PHOTOS[0])]], [photo],
                        label="Example photo")
        with gr.Column(min_width=300, scale=2):
            table = gr.Dataframe(headers=list(COMPARE_HEADERS), interactive=False,
                                 wrap=True, elem_id="ee-compare-table", label="Backends",
                                 # pixels, not percentages: on a phone the table
                                 # scrolls sideways instead of squeezing words apart
                                 column_widths=["170px", "80px", "100px", "90px", "80px",
                                                "90px", "150px"])
            summary = gr.Markdown(elem_id="ee-compare-status")

    @_shielded(lambda message: ([], f"⚠️ {message}"))
    def compare(image: Any, detector_name: str, key: str) -> tuple[list, str]:
        return service.compare(image, detector_name, selected=key)

    run.click(compare, [photo, detector, backend], [table, summary], api_name="compare",
              preprocess=False)
    photo.change(lambda: ([], ""), None, [table, summary], api_visibility="private",
                 queue=False, show_progress="hidden")


def _about_tab(service: AppService,
               report: str | os.PathLike | None) -> tuple[gr.Markdown, gr.JSON]:
    gr.Markdown("## About the model")
    card = gr.Markdown(elem_id="ee-model-card")
    with gr.Accordion("Sidecar (the model's contract)", open=False):
        sidecar = gr.JSON(label="Sidecar")
    rows = service.model_rows()
    if rows:
        gr.Markdown("### Models\nAccuracy as each model's sidecar records it, on the labels "
                    "it was measured on.")
        gr.Dataframe(value=rows, headers=list(MODEL_HEADERS), interactive=False, wrap=True,
                     label="Models", elem_id="ee-models-table")
    gr.Markdown("### Benchmark")
    plot, rows = read_benchmark(report)
    if plot is None and not rows:
        where = f" at `{report}`" if report is not None else ""
        gr.Markdown(f"No benchmark report{where}; run `emotion-edge bench` to make one.")
    if plot is not None:
        gr.Image(str(plot), label="Accuracy and latency", interactive=False,
                 elem_id="ee-bench-plot")
    if rows:
        gr.Dataframe(value=[list(row.values()) for row in rows], headers=list(rows[0]),
                     interactive=False, label="Benchmark results", wrap=True,
                     elem_id="ee-bench-table")
    return card, sidecar


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = 7860,
           block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Serve ``demo`` on ``host:port`` with a local theme and no outside requests."""
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                share=False, show_error=False, ssr_mode=False, pwa=False, mcp_server=False,
                max_file_size="40mb", quiet=quiet, theme=gr.themes.Default(), css=PAGE_CSS,
                allowed_paths=[str(EXAMPLES_DIR)])
    return demo
