"""Stream mode: the tracker, the time-constant moving average, timestamps, and the
StreamRecognizer on frames of a moving photo through the bundled model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from emotion_edge.runtime import (
    EmotionRecognizer,
    FaceResult,
    FaceTracks,
    IoUTracker,
    RecognizerOptions,
    StreamOptions,
    StreamRecognizer,
    TimestampError,
)
from emotion_edge.runtime.errors import ConfigError
from emotion_edge.runtime.stream import ema_weight
from emotion_edge.runtime.tracking import centre_distance, greedy_match, iou_matrix

LABELS = ("angry", "happy", "neutral")


def face(box, probs, score=0.9) -> FaceResult:
    probs = np.asarray(probs, float)
    best = int(np.argmax(probs))
    return FaceResult(box=tuple(map(float, box)), detection_score=score, label=LABELS[best],
                      score=float(probs[best]),
                      probabilities=dict(zip(LABELS, map(float, probs), strict=True)))


# --- tracker -------------------------------------------------------------------------

def test_iou_matrix_values():
    a = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]])
    iou = iou_matrix(a, b)
    assert iou == pytest.approx(np.array([[50 / 150, 1.0], [0.0, 0.0]]))


def test_greedy_match_takes_best_pairs_first():
    iou = np.array([[0.5, 0.6], [0.0, 0.55]])
    # best pair (0, 1) first; row 1 then has only column 1, which is taken
    assert greedy_match(iou, 0.3) == [(0, 1)]
    assert greedy_match(np.array([[0.9, 0.4], [0.4, 0.8]]), 0.3) == [(0, 0), (1, 1)]
    assert greedy_match(np.array([[0.2]]), 0.3) == []


def test_tracker_keeps_ids_of_two_moving_faces_and_predicts_between():
    tracker = IoUTracker(iou_threshold=0.3, max_miss_s=0.5)
    for i in range(10):
        t = i / 30
        boxes = [[10 + 3 * i, 10, 60 + 3 * i, 60], [200 - 3 * i, 100, 250 - 3 * i, 150]]
        updates = tracker.update(np.array(boxes), t)
        assert [(u.track_id, u.detection) for u in updates] == [(1, 0), (2, 1)]
    # constant velocity: 3 px per frame = 90 px/s, so half a frame later +1.5 px
    predicted = tracker.predict(9.5 / 30)
    assert predicted[0].box == pytest.approx((38.5, 10, 88.5, 60), abs=1e-6)
    assert predicted[1].box == pytest.approx((171.5, 100, 221.5, 150), abs=1e-6)


def test_predicted_boxes_stop_after_max_predict_s():
    tracker = IoUTracker(max_miss_s=5.0, max_predict_s=0.2)
    tracker.update(np.array([[0, 0, 50, 50]]), 0.0)
    tracker.update(np.array([[10, 0, 60, 50]]), 0.1)            # 100 px/s to the right
    assert tracker.predict(0.2)[0].box == pytest.approx((20, 0, 70, 50))
    assert tracker.predict(2.0)[0].box == pytest.approx((30, 0, 80, 50))  # 0.2 s at most


def test_tracker_keeps_an_id_through_a_short_miss_and_drops_it_after_max_miss():
    tracker = IoUTracker(max_miss_s=0.1)
    box = np.array([[10, 10, 60, 60]])
    assert tracker.update(box, 0.0)[0].track_id == 1
    missed = tracker.update(np.zeros((0, 4)), 1 / 30)
    assert [(u.track_id, u.detection) for u in missed] == [(1, None)]
    tracker.update(np.zeros((0, 4)), 2 / 30)
    assert tracker.update(box, 3 / 30)[0].track_id == 1          # back after 2 frames
    assert tracker.update(np.zeros((0, 4)), 0.3) == []           # gone > 0.1 s: dropped
    assert tracker.update(box, 0.4)[0].track_id == 2             # a new id, never reused


def test_centre_distance_in_box_sides_and_only_for_similar_sizes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[6, 8, 16, 18], [0, 0, 20, 20], [0, 0, 30, 30]])
    assert centre_distance(a, b)[0, :2] == pytest.approx([1.0, math.sqrt(50) / 10])
    assert centre_distance(a, b)[0, 2] == np.inf  # 3x larger: never the same face


def test_a_face_back_from_behind_another_keeps_its_id_if_it_is_near():
    tracker = IoUTracker(max_miss_s=0.5, max_distance=0.75)
    tracker.update(np.array([[0, 0, 50, 50]]), 0.0)
    tracker.update(np.zeros((0, 4)), 0.1)                        # hidden
    # back 30 px further (no overlap with the prediction, which stands still): same id
    assert [(u.track_id, u.detection) for u in tracker.update(
        np.array([[30, 0, 80, 50]]), 0.2)] == [(1, 0)]
    # seen in the last round (now moving 150 px/s, predicted at x0 = 45): a detection
    # 0.7 box sides away that hardly overlaps (IoU 0.18) is another face
    ids = [u.track_id for u in tracker.update(np.array([[80, 0, 130, 50]]), 0.3)]
    assert ids == [1, 2]


def test_tracker_options_are_checked():
    with pytest.raises(ConfigError):
        IoUTracker(iou_threshold=0.0)
    with pytest.raises(ConfigError):
        IoUTracker(max_miss_s=-1)
    with pytest.raises(ConfigError):
        IoUTracker(max_predict_s=-0.1)
    with pytest.raises(ConfigError):
        StreamOptions(detect_every=0)
    with pytest.raises(ConfigError):
        StreamOptions(smoothing_s=float("nan"))


# --- smoothing -----------------------------------------------------------------------

def test_moving_average_matches_a_hand_computation():
    tracks = FaceTracks(StreamOptions(smoothing_s=1.0))
    p0, p1, p2 = [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]
    box = (10, 10, 60, 60)
    first = tracks.observe([face(box, p0)], 0.0).faces[0]
    assert first.probabilities == pytest.approx(dict(zip(LABELS, p0, strict=True)))
    tracks.observe([face(box, p1)], 0.5)
    third = tracks.observe([face(box, p2)], 0.75).faces[0]
    a1, a2 = 1 - math.exp(-0.5), 1 - math.exp(-0.25)
    s1 = [x + a1 * (y - x) for x, y in zip(p0, p1, strict=True)]
    s2 = [x + a2 * (y - x) for x, y in zip(s1, p2, strict=True)]
    assert list(third.probabilities.values()) == pytest.approx(s2, abs=1e-12)
    assert third.label == LABELS[int(np.argmax(s2))] and third.score == pytest.approx(max(s2))
    assert third.raw.probabilities == dict(zip(LABELS, p2, strict=True))  # raw kept
    assert third.track_id == 1
    as_dict = third.to_dict()
    assert as_dict["track_id"] == 1 and as_dict["raw"]["probabilities"]["neutral"] == 0.6
    assert as_dict["probabilities"] == pytest.approx(dict(zip(LABELS, s2, strict=True)))


def test_moving_average_does_not_depend_on_the_frame_rate():
    before, after = [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]
    box = (10, 10, 60, 60)
    ends = []
    for fps in (10, 30, 60):
        tracks = FaceTracks(StreamOptions(smoothing_s=0.4))
        tracks.observe([face(box, before)], 0.0)
        for i in range(1, fps + 1):  # the new expression for one second
            last = tracks.observe([face(box, after)], i / fps).faces[0]
        ends.append(list(last.probabilities.values()))
    expected = [b + (1 - math.exp(-1 / 0.4)) * (a - b) for b, a in zip(before, after,
                                                                        strict=True)]
    for end in ends:
        assert end == pytest.approx(expected, abs=1e-12)
    assert ema_weight(0.1, 0.0) == 1.0


def test_smoothing_off_gives_the_raw_result():
    tracks = FaceTracks(StreamOptions(smoothing_s=0.0))
    tracks.observe([face((0, 0, 50, 50), [0.6, 0.3, 0.1])], 0.0)
    out = tracks.observe([face((0, 0, 50, 50), [0.1, 0.3, 0.6])], 0.1).faces[0]
    assert out.probabilities == out.raw.probabilities and out.label == "neutral"


# --- timestamps ----------------------------------------------------------------------

@pytest.mark.parametrize("times", [(0.0, 0.0), (1.0, 0.5)])
def test_timestamps_must_increase(times):
    tracks = FaceTracks()
    tracks.observe([], times[0])
    with pytest.raises(TimestampError, match="must increase"):
        tracks.observe([], times[1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1.0", None, True])
def test_bad_timestamps_are_typed_errors(bad):
    with pytest.raises(TimestampError):
        FaceTracks().follow(bad)


# --- on the bundled model --------------------------------------------------------------

@pytest.fixture(scope="module")
def frames():
    from emotion_edge.video.synth import clip_frames

    return list(clip_frames(frames=24, width=320, height=240, hidden=frozenset({9, 10})))


def test_stream_recognizer_keeps_one_id_through_motion_and_a_two_frame_gap(frames):
    options = StreamOptions(RecognizerOptions(detector="blazeface", threads=1))
    with StreamRecognizer(options) as stream:
        results = [stream.process(f, timestamp_ms=i * 1000 / 30) for i, f in enumerate(frames)]
    ids = {face.track_id for r in results for face in r.faces}
    assert ids == {1}
    for i in (9, 10):  # the face is hidden: the track goes on at its predicted box
        assert [f.raw for f in results[i].faces] == [None]
    assert all(r.faces and r.faces[0].raw is not None for i, r in enumerate(results)
               if i not in (9, 10))


def test_two_crossing_faces_keep_their_ids_through_the_occlusion():
    from emotion_edge.video.synth import clip_frames

    clip = clip_frames(frames=30, width=320, height=240, crossing=True)
    options = StreamOptions(RecognizerOptions(detector="blazeface", threads=1))
    centres: dict[int, list[float]] = {}
    with StreamRecognizer(options) as stream:
        for i, frame in enumerate(clip):
            for tracked in stream.process(frame, timestamp_s=i / 15).faces:
                centres.setdefault(tracked.track_id, []).append(
                    (tracked.box[0] + tracked.box[2]) / 2)
    assert sorted(centres) == [1, 2]
    # the face on the left moves right and the other left, each the whole way
    assert np.all(np.diff(centres[1]) > 0) and np.all(np.diff(centres[2]) < 0)
    assert centres[1][-1] - centres[1][0] > 150 and centres[2][0] - centres[2][-1] > 150


def test_stream_recognizer_analyses_every_nth_frame_with_the_photo_results(frames):
    recognizer_options = RecognizerOptions(detector="blazeface", threads=1)
    options = StreamOptions(recognizer_options, detect_every=3, smoothing_s=0.0)
    with StreamRecognizer(options) as stream, EmotionRecognizer(recognizer_options) as photo:
        for i, frame in enumerate(frames[:9]):
            result = stream.process(frame, timestamp_s=i / 30)
            assert result.analysed == (i % 3 == 0) and result.frame_index == i
            (tracked,) = result.faces
            if result.analysed:
                (expected,) = photo.analyze(frame)
                assert tracked.raw.probabilities == expected.probabilities
                assert tracked.probabilities == pytest.approx(expected.probabilities)
                assert tracked.box == expected.box
            else:
                assert tracked.raw is None and tracked.detection_score is None


def test_stream_recognizer_wants_exactly_one_timestamp(frames):
    with StreamRecognizer(StreamOptions(RecognizerOptions(detector="blazeface"))) as stream:
        with pytest.raises(TimestampError, match="exactly one"):
            stream.process(frames[0])
        with pytest.raises(TimestampError, match="exactly one"):
            stream.process(frames[0], timestamp_s=0.0, timestamp_ms=0.0)
        stream.process(frames[0], timestamp_ms=40)
        with pytest.raises(TimestampError, match="must increase"):
            stream.process(frames[1], timestamp_s=0.01)
