"""emotion-edge video: clips made here with PyAV (a demo photo panned and zoomed), outputs
checked by value against the photo recognizer, staged writes, Ctrl-C and bad input."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
av = pytest.importorskip("av")

from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions, StreamOptions  # noqa: E402
from emotion_edge.runtime.errors import ConfigError  # noqa: E402
from emotion_edge.video import (  # noqa: E402
    EmptyVideoError,
    NotAVideoError,
    TruncatedVideoError,
    VideoOptions,
    VideoTargets,
    analyze_video,
)
from emotion_edge.video.io import VideoReader  # noqa: E402
from emotion_edge.video.synth import DEFAULT_PHOTO, make_clip  # noqa: E402

from emotion_edge.cli import main  # noqa: E402

FPS = 15
FRAMES = 24
RECOGNIZER = RecognizerOptions(detector="blazeface", threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return make_clip(path, seconds=FRAMES / FPS, fps=FPS, width=320, height=240,
                     hidden=frozenset({9, 10}))


def targets(folder, **kwargs) -> VideoTargets:
    return VideoTargets(out=folder / "out.mp4", csv=folder / "faces.csv",
                        json=folder / "summary.json", plot=folder / "timeline.png", **kwargs)


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_outputs_match_the_photo_recognizer_and_a_hand_smoothing(clip, tmp_path):
    tau = 0.4
    options = VideoOptions(StreamOptions(RECOGNIZER, smoothing_s=tau))
    run = analyze_video(clip, options, targets(tmp_path))
    assert set(run.written) == {"out", "csv", "json", "plot"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "faces.csv", "out.mp4", "summary.json", "timeline.png"]  # no temporary files left

    with VideoReader(clip) as reader, EmotionRecognizer(RECOGNIZER) as photo:
        expected = {i: photo.analyze(frame) for i, (frame, _, _) in enumerate(reader.frames())}
    rows = read_csv(tmp_path / "faces.csv")
    assert [int(r["frame"]) for r in rows] == [i for i in range(FRAMES) if i not in (9, 10)]
    labels = photo.labels
    smoothed, last_t = None, None
    for row in rows:
        frame = int(row["frame"])
        (face,) = expected[frame]
        assert float(row["time_s"]) == pytest.approx(frame / FPS, abs=1e-4)
        assert row["track_id"] == "1"
        assert [float(row[k]) for k in ("x0", "y0", "x1", "y1")] == pytest.approx(
            face.box, abs=0.051)
        raw = np.array([face.probabilities[k] for k in labels])
        assert [float(row[f"raw_{k}"]) for k in labels] == pytest.approx(raw.tolist(),
                                                                         abs=6e-5)
        assert row["raw_label"] == face.label
        t = frame / FPS
        smoothed = raw if smoothed is None else (
            smoothed + (1 - math.exp(-(t - last_t) / tau)) * (raw - smoothed))
        last_t = t
        assert [float(row[f"smoothed_{k}"]) for k in labels] == pytest.approx(smoothed.tolist(),
                                                                              abs=6e-5)
        assert row["label"] == labels[int(np.argmax(smoothed))]

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_read"] == FRAMES and summary["frames_analysed"] == FRAMES
    assert summary["video_seconds"] == pytest.approx(FRAMES / FPS, abs=1e-3)
    assert summary["interrupted"] is False and summary["encoder"] == "libx264"
    (track,) = summary["tracks"]
    assert track["first_s"] == 0.0 and track["last_s"] == pytest.approx((FRAMES - 1) / FPS,
                                                                        abs=1e-3)
    counts = {k: sum(r["label"] == k for r in rows) for k in labels}
    assert track["frames"] == len(rows) == FRAMES - 2
    assert track["dominant"] == max(counts, key=counts.get)
    assert track["share"] == pytest.approx({k: counts[k] / len(rows) for k in labels},
                                           abs=1e-4)
    raw_labels, labels_seen = [r["raw_label"] for r in rows], [r["label"] for r in rows]
    assert track["label_changes"] == {
        "raw": sum(a != b for a, b in zip(raw_labels, raw_labels[1:], strict=False)),
        "smoothed": sum(a != b for a, b in zip(labels_seen, labels_seen[1:], strict=False))}
    assert track["off_dominant"]["raw"] == pytest.approx(
        sum(label != track["dominant"] for label in raw_labels) / len(rows), abs=1e-4)
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])  # drawn on YUV / on RGB
def test_annotated_video_has_every_frame_at_the_same_size_and_rate(pix_fmt, clip, tmp_path):
    if pix_fmt != "yuv420p":
        clip = make_clip(tmp_path / "clip444.mp4", seconds=FRAMES / FPS, fps=FPS, width=320,
                         height=240, hidden=frozenset({9, 10}), pix_fmt=pix_fmt)
    analyze_video(clip, VideoOptions(StreamOptions(RECOGNIZER)),
                  VideoTargets(out=tmp_path / "out.mp4"))
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == FPS
    assert len(frames) == FRAMES and frames[0].shape == (240, 320, 3)
    with VideoReader(clip) as reader:
        (first, _, _), *_ = reader.frames()
    # boxes are drawn: the annotated frame differs from the source clearly but locally
    changed = np.abs(frames[0].astype(int) - first.astype(int)).max(axis=2) > 60
    assert 0.005 < changed.mean() < 0.2


def test_a_video_filmed_upright_on_a_phone_is_analysed_and_written_upright(tmp_path):
    clip = make_clip(tmp_path / "phone.mp4", seconds=8 / FPS, fps=FPS, width=320,
                     height=240, sideways=True)
    with av.open(str(clip)) as container:  # stored sideways, with a turn to display
        stored = next(container.decode(video=0))
        assert (stored.width, stored.height, stored.rotation) == (240, 320, -90)
    run = analyze_video(clip, VideoOptions(StreamOptions(RECOGNIZER)),
                        VideoTargets(out=tmp_path / "out.mp4", csv=tmp_path / "f.csv"))
    assert (run.summary["video"]["width"], run.summary["video"]["height"]) == (320, 240)
    assert [r["track_id"] for r in read_csv(tmp_path / "f.csv")] == ["1"] * 8
    with av.open(str(tmp_path / "out.mp4")) as container:
        first = next(container.decode(video=0))
        assert (first.width, first.height, first.rotation) == (320, 240, 0)


def test_every_third_frame_is_analysed(clip, tmp_path):
    options = VideoOptions(StreamOptions(RECOGNIZER, detect_every=3))
    run = analyze_video(clip, options, VideoTargets(csv=tmp_path / "f.csv"))
    assert run.summary["frames_read"] == FRAMES and run.summary["frames_analysed"] == 8
    frames = [int(r["frame"]) for r in read_csv(tmp_path / "f.csv")]
    assert frames == [0, 3, 6, 12, 15, 18, 21]  # frame 9 is hidden: no face there


def test_start_and_end_choose_a_time_range(clip, tmp_path):
    options = VideoOptions(StreamOptions(RECOGNIZER), start_s=0.4, end_s=1.0)
    run = analyze_video(clip, options, VideoTargets(csv=tmp_path / "f.csv"))
    frames = [float(r["time_s"]) for r in read_csv(tmp_path / "f.csv")]
    assert run.summary["frames_read"] == 10  # frames 6..15 at 15 fps
    assert frames[0] == pytest.approx(0.4) and frames[-1] == pytest.approx(1.0)


def test_ctrl_c_leaves_complete_playable_outputs(clip, tmp_path):
    def stop_at_ten(result):
        if result.frame_index == 10:
            raise KeyboardInterrupt

    run = analyze_video(clip, VideoOptions(StreamOptions(RECOGNIZER)), targets(tmp_path),
                        on_frame=stop_at_ten)
    assert run.interrupted
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["frames_read"] == 11
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 11
    assert [int(r["frame"]) for r in read_csv(tmp_path / "faces.csv")] == list(range(9))
    assert not list(tmp_path.glob(".*partial*"))


def test_a_file_cut_short_gives_outputs_for_its_frames_then_an_error(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", seconds=FRAMES / FPS, fps=FPS, width=320,
                      height=240, faststart=True)  # index first: the cut file still opens
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TruncatedVideoError, match=r"only (\d+) of the 24 frames") as caught:
        analyze_video(cut, VideoOptions(StreamOptions(RECOGNIZER)), targets(out))
    read = int(caught.value.args[0].split("only ")[1].split(" ")[0])
    assert 0 < read < FRAMES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truncated"] is True and summary["frames_read"] == read
    with av.open(str(out / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == read


def test_existing_outputs_are_never_replaced_without_overwrite(clip, tmp_path):
    (tmp_path / "faces.csv").write_text("mine\n")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        analyze_video(clip, VideoOptions(StreamOptions(RECOGNIZER)), targets(tmp_path))
    assert (tmp_path / "faces.csv").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv"]
    analyze_video(clip, VideoOptions(StreamOptions(RECOGNIZER)),
                  targets(tmp_path, overwrite=True))
    assert read_csv(tmp_path / "faces.csv")[0]["frame"] == "0"


def test_a_failed_run_leaves_no_files(tmp_path):
    with pytest.raises(NotAVideoError):
        analyze_video(DEFAULT_PHOTO, VideoOptions(StreamOptions(RECOGNIZER)),
                      targets(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_get_typed_errors(clip, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    truncated = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    truncated.write_bytes(data[:len(data) // 3])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path, error, words in [(text, NotAVideoError, "not a video"),
                               (DEFAULT_PHOTO, NotAVideoError, "still image"),
                               (truncated, TruncatedVideoError, "damaged or truncated"),
                               (empty, EmptyVideoError, "empty")]:
        with pytest.raises(error, match=words):
            VideoReader(path)
    with VideoReader(clip) as reader, pytest.raises(EmptyVideoError, match="--start"):
        list(reader.frames(start_s=30.0))
    with pytest.raises(ConfigError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")


def test_a_stream_url_is_read_like_a_file(tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    make_clip(tmp_path / "clip.mp4", seconds=10 / FPS, fps=FPS, width=320, height=240,
              faststart=True)  # index first: playable while it downloads
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        run = analyze_video(url, VideoOptions(StreamOptions(RECOGNIZER)),
                            VideoTargets(csv=tmp_path / "f.csv"))
    finally:
        server.shutdown()
    assert run.summary["frames_read"] == 10
    times = [float(r["time_s"]) for r in read_csv(tmp_path / "f.csv")]
    assert times == pytest.approx([i / FPS for i in range(10)], abs=1e-3)


def test_a_webcam_or_stream_that_cannot_be_opened_is_a_typed_error():
    from emotion_edge.video import StreamOpenError

    with pytest.raises(StreamOpenError, match="webcam 97"):
        VideoReader("97")
    with pytest.raises(StreamOpenError, match="cannot be opened"):
        VideoReader("http://127.0.0.1:9/clip.mp4")  # nothing listens on port 9


def test_cli_writes_outputs_and_reports_errors(clip, tmp_path, capsys):
    summary = tmp_path / "s.json"
    code = main(["video", str(clip), "--json", str(summary), "--every", "2",
                 "--detector", "blazeface", "--threads", "1", "--no-progress"])
    assert code == 0
    assert json.loads(summary.read_text())["frames_analysed"] == FRAMES // 2
    assert "24 frames read, 12 analysed" in capsys.readouterr().out
    assert main(["video", str(clip), "--json", str(summary), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["video", str(DEFAULT_PHOTO), "--no-progress"]) == 2
    assert "not a video" in capsys.readouterr().err
    assert main(["video", str(clip), "--start", "2", "--end", "1"]) == 2
    assert main(["video", str(clip), "--out", str(tmp_path / "a.webm"), "--no-progress"]) == 2
    assert "name a video file ending in .mp4" in capsys.readouterr().err


# --- the app: Video tab and the webcam's stream mode ------------------------------------

@pytest.fixture(scope="module")
def app_service():
    pytest.importorskip("gradio")
    from emotion_edge.app.ui import make_service

    service = make_service(model="default")
    yield service
    service.close()


def test_video_tab_endpoint_returns_video_plot_csv_and_time(app_service, clip):
    import socket

    from emotion_edge.app.ui import build_app, launch
    from gradio_client import Client, handle_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(build_app(app_service, report=None), port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        video, plot, table, status = client.predict(
            handle_file(str(clip)), app_service.default.key, "blazeface", api_name="/video")
    finally:
        demo.close()
    with av.open(video) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    assert open(plot, "rb").read(4) == b"\x89PNG"
    rows = read_csv(Path(table))
    assert len(rows) == FRAMES - 2 and {r["track_id"] for r in rows} == {"1"}
    assert f"{FRAMES} frames" in status and "fps" in status and "#1 mostly" in status


def test_video_tab_says_what_is_wrong(app_service):
    from emotion_edge.app.video_tab import analyze_clip

    with pytest.raises(NotAVideoError):
        analyze_clip(app_service, str(DEFAULT_PHOTO), app_service.default.key)


def test_webcam_stream_mode_keeps_the_id_through_a_gap(app_service):
    from dataclasses import replace

    from emotion_edge.app.video_tab import live_stream
    from emotion_edge.runtime import FaceTracks
    from emotion_edge.video.synth import clip_frames

    handler = live_stream(app_service)
    tracks = None  # the handler makes the viewer's tracks at the first frame
    statuses = []
    for i, frame in enumerate(clip_frames(frames=12, width=320, height=240,
                                          hidden=frozenset({5, 6}))):
        image, status, tracks = handler(frame, app_service.default.key, "blazeface", tracks)
        if i == 0:  # the webcam's clock is the wall clock: keep the test off a slow machine's
            tracks = FaceTracks(replace(tracks.options, max_miss_s=60.0))
            image, status, tracks = handler(frame, app_service.default.key, "blazeface", tracks)
        assert image.shape == (240, 320, 3)
        statuses.append(status)
    assert all(s.startswith("#1 ") for s in statuses), statuses
    assert tracks.frames == 12 and [t.track_id for t in tracks.tracker.tracks] == [1]


def test_webcam_boxes_are_tagged_with_track_ids():
    from types import SimpleNamespace

    import numpy as np
    from emotion_edge.app.render import annotate, colour_of
    from emotion_edge.runtime.draw import LabelledBox, draw_boxes

    image = np.full((120, 160, 3), 90, np.uint8)
    face = SimpleNamespace(box=(20.0, 20.0, 80.0, 80.0), label="happy", score=0.81, track_id=7)
    expected = draw_boxes(image, [LabelledBox((20.0, 20.0, 80.0, 80.0), "#7 happy 81%",
                                              colour_of("happy"), short_text="#7")], min_side=0)
    np.testing.assert_array_equal(annotate(image, [face], min_side=0), expected)
    plain = SimpleNamespace(box=face.box, label="happy", score=0.81)  # a photo's face: 1, 2…
    assert not np.array_equal(annotate(image, [plain], min_side=0), expected)


def test_ctrl_c_on_the_command_line_exits_130_with_playable_outputs(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    long_clip = make_clip(tmp_path / "long.mp4", seconds=40, fps=FPS, width=320, height=240)
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "emotion_edge", "video", str(long_clip), "--out", str(out),
         "--csv", str(table), "--detector", "blazeface", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in tmp_path.glob(".faces.partial-*.csv")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "(interrupted)" in stdout
    frames = int(stdout.split(" frames read")[0])
    assert 0 < frames < 40 * FPS
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
    assert len(read_csv(table)) == frames
