"""``process_video``'s overlapped stages (decoding ahead, drawing and writing behind the
tracker, each in a thread) give the sequential loop's results, and a failure or Ctrl-C in any
stage keeps every frame before it: the records and the video hold the same complete frames."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from ddfa.pipeline.throughput import Sink, prefetch
from ddfa.video import SmoothingOptions, VideoOptions, VideoWriter, process_video, read_records
from ddfa.video import process as video_process
from ddfa.video.tracker import VideoTracker


def _decoded(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def _run(tmp_path, name, source, aligner, sequential, **options):
    out = tmp_path / f"{name}.mp4"
    options.setdefault("outputs", ("2d_sparse",))
    summary = process_video(source, out, aligner=aligner, options=VideoOptions(sequential=sequential, **options))
    header, frames, end = read_records(out.with_suffix(".jsonl"))
    return summary, frames, end, _decoded(out)


def test_overlapped_stages_equal_the_sequential_loop(tmp_path, aligner, obama_path):
    """Same records (the tracker's faces, smoothed with look-ahead: results leave the tracker
    frames late) and the same encoded video, frame by frame; the decoding, drawing and writing
    threads are gone afterwards. (The other tests here run causal smoothing both ways.)"""
    before = set(threading.enumerate())
    runs = {mode: _run(tmp_path, mode, obama_path, aligner, mode == "sequential", max_frames=12,
                       smoothing=SmoothingOptions(mode="offline", lookahead=3))
            for mode in ("sequential", "overlapped")}
    (s1, frames1, end1, video1), (s2, frames2, end2, video2) = runs["sequential"], runs["overlapped"]
    assert s1.complete and s2.complete and s1.frames == s2.frames == len(frames2) == len(video2) == 12
    assert frames1 == frames2
    assert {k: v for k, v in end1.items() if k != "fps"} == {k: v for k, v in end2.items() if k != "fps"}
    assert all(np.array_equal(a, b) for a, b in zip(video1, video2))
    assert not [t for t in threading.enumerate() if t not in before and t.name.startswith("ddfa-video")]


@pytest.mark.parametrize("stage", ["draw", "encode"])
def test_a_failing_stage_keeps_the_frames_before_it(tmp_path, aligner, obama_frames, monkeypatch, stage):
    """Drawing (frame 5) or encoding (frame 4) fails: the run stops there, and the records and
    the finalised video hold exactly the frames before it, in either mode."""
    fail_at = {"draw": 5, "encode": 4}[stage]
    calls = {"n": 0}

    def failing(original):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at + 1:
                raise OSError(f"{stage} failed on purpose")
            return original(*args, **kwargs)
        return call

    frames_in = [cv2.resize(f, (640, 360)) for f in obama_frames[:10]]
    results = {}
    for mode in ("sequential", "overlapped"):
        calls["n"] = 0
        with monkeypatch.context() as patch:
            if stage == "draw":
                patch.setattr(video_process, "render_frame", failing(video_process.render_frame))
            else:
                patch.setattr(VideoWriter, "write", failing(VideoWriter.write))
            summary, frames, end, video = _run(tmp_path, f"{stage}-{mode}", frames_in, aligner, mode == "sequential",
                                               smoothing="causal", fps=10.0)
        assert summary.frames == len(frames) == len(video) == fail_at, (mode, summary)
        assert summary.problem.startswith(f"processing failed after {fail_at} frame(s) (at frame {fail_at - 1}")
        assert f"OSError: {stage} failed on purpose" in summary.problem
        assert end["frames"] == fail_at and end["complete"] is False
        results[mode] = frames
    assert results["sequential"] == results["overlapped"]


def test_ctrl_c_keeps_every_frame_already_tracked(tmp_path, aligner, obama_frames, monkeypatch):
    """Ctrl-C while the tracker works on frame 7: the 7 frames tracked before it are all drawn
    and written (none lost in the queues), the run is marked interrupted."""
    step = VideoTracker.step

    def interrupted(self, image, index=None, time=None):
        if index == 7:
            raise KeyboardInterrupt
        return step(self, image, index, time)

    monkeypatch.setattr(VideoTracker, "step", interrupted)
    frames_in = [cv2.resize(f, (640, 360)) for f in obama_frames[:12]]
    for mode in ("sequential", "overlapped"):
        summary, frames, end, video = _run(tmp_path, f"int-{mode}", frames_in, aligner, mode == "sequential",
                                           smoothing="causal", fps=10.0)
        assert summary.interrupted and summary.problem is None
        assert summary.frames == len(frames) == len(video) == 7
        assert end["interrupted"] is True and end["last_frame"] == 6


def test_prefetch_raises_in_order_and_stops_when_closed():
    def items():
        yield from range(3)
        raise ValueError("broken item 3")

    got = []
    with pytest.raises(ValueError, match="broken item 3"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2]
    endless_read = []

    def endless():
        i = 0
        while True:
            endless_read.append(i)
            yield i
            i += 1

    reader = prefetch(endless(), depth=2, name="ddfa-test-prefetch")
    assert [next(reader) for _ in range(5)] == list(range(5))
    reader.close()
    assert not [t for t in threading.enumerate() if t.name == "ddfa-test-prefetch"]
    assert len(endless_read) <= 5 + 2 + 1  # read at most depth (+1 in hand) ahead


def test_sink_writes_in_order_and_raises_a_write_error_in_the_caller():
    written = []

    def write(item):
        if item == 4:
            raise OSError("disk full")
        written.append(item)

    sink = Sink(write, depth=2)
    with pytest.raises(OSError, match="disk full"):
        for item in range(50):
            sink.put(item)
    sink.close()  # raised once only
    assert written == [0, 1, 2, 3] and isinstance(sink.error, OSError)
    with Sink(written.append) as ok:
        for item in range(5, 9):
            ok.put(item)
    assert written == list(range(4)) + [5, 6, 7, 8]  # all written when the block ends
    inline = Sink(write, threaded=False)  # the same interface, writing in the caller's thread
    inline.put(3)
    with pytest.raises(OSError, match="disk full"):
        inline.put(4)
    inline.close()
    assert written[-1] == 3 and inline.finish() is None
    del written[-1]
    with pytest.raises(KeyError):  # the block's own error wins over the write's
        with Sink(write) as failing:
            failing.put(4)
            raise KeyError("the caller's")
