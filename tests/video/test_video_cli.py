"""``ddfa video`` and ``process_video``: rendered video, records, damaged inputs, sources."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import ddfa
from ddfa.cli.main import main
from ddfa.io.results import SCHEMA_VERSION
from ddfa.video import (
    TrackerOptions,
    VideoOptions,
    VideoReadError,
    VideoSource,
    VideoWriter,
    process_video,
    read_records,
    render_frame,
)


def count_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def test_video_help_lists_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["video", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--output", "--records", "--outputs", "--detect-every", "--smooth", "--smooth-strength",
                   "--min-cutoff", "--beta", "--lookahead", "--max-faces", "--codec", "--max-frames", "--sequential",
                   "2d_sparse"):
        assert option in out


def test_cli_renders_video_and_records(tmp_path, obama_path, assets_dir, capsys):
    out = tmp_path / "obama.mp4"
    code = main(["video", str(obama_path), "--output", str(out), "--max-frames", "16", "--assets", str(assets_dir),
                 "--quiet", "--smooth", "offline", "--lookahead", "4"])
    assert code == 0
    assert "16 frame(s), 1 track(s)" in capsys.readouterr().out
    assert count_frames(out) == 16
    header, frames, summary = read_records(tmp_path / "obama.jsonl")
    assert header["fps"] == 25.0 and (header["width"], header["height"]) == (1280, 720)
    assert header["smoothing"]["mode"] == "offline" and header["tracker"]["detect_every"] == 10
    assert header["schema_version"] == summary["schema_version"] == SCHEMA_VERSION
    assert all(f["schema_version"] == SCHEMA_VERSION for f in frames)
    assert [f["frame"] for f in frames] == list(range(16))
    np.testing.assert_allclose([f["time"] for f in frames], np.arange(16) / 25.0)
    assert [f["detected"] for f in frames] == [i % 10 == 0 for i in range(16)]
    for record in frames:
        (face,) = record["faces"]
        assert face["track_id"] == 1
        assert set(face) >= {"box", "score", "roi_box", "landmarks_68", "pose", "confirmed", "landmark_box"}
        lm = np.asarray(face["landmarks_68"])[:, :2]
        np.testing.assert_allclose(face["landmark_box"], [*lm.min(0), *lm.max(0)], atol=1e-3)
        assert np.shape(face["landmarks_68"]) == (68, 3) and set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert summary["complete"] and summary["frames"] == 16 and summary["problem"] is None
    assert summary["tracks"] == [{"track_id": 1, "first_frame": 0, "last_frame": 15, "frames": 16,
                                  "end": "end of video"}]
    # the landmarks are drawn (green dots) where the records put them, and the id label below
    capture = cv2.VideoCapture(str(out))
    for _ in range(9):
        ok, frame = capture.read()
    face = frames[8]["faces"][0]
    frame = frame.astype(np.int64)  # (uint8 sums wrap around)
    green = [frame[y, x, 1] > 150 and frame[y, x, 1] > frame[y, x, 2] + 50
             for x, y, _ in np.round(face["landmarks_68"]).astype(int)]
    assert np.mean(green) > 0.8
    x1, y2 = int(face["box"][0]), int(face["box"][3])
    label = frame[y2 + 5:y2 + 13, x1 + 2:x1 + 10].reshape(-1, 3).astype(int)
    assert np.abs(label - (0, 200, 255)).sum(axis=1).min() < 60  # track 1's colour


def _truncated_avi(frames, path, keep: float) -> None:
    with VideoWriter(path, 25.0) as writer:  # .avi: MJPG
        for frame in frames:
            writer.write(cv2.resize(frame, (640, 360)))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_video_keeps_what_was_processed(tmp_path, obama_frames, assets_dir, capsys):
    pytest.importorskip("imageio_ffmpeg")
    source = tmp_path / "cut.avi"
    _truncated_avi(obama_frames[:30], source, 0.6)
    out = tmp_path / "cut.mp4"
    code = main(["video", str(source), "--output", str(out), "--assets", str(assets_dir), "--quiet",
                 "--smooth", "causal"])
    assert code == 1
    err = capsys.readouterr().err
    header, frames, summary = read_records(tmp_path / "cut.jsonl")
    kept = len(frames)
    assert 5 < kept < 30
    assert f"{source}: stopped at frame {kept - 1} ({(kept - 1) / 25:.2f} s)" in err
    assert "truncated or corrupt" in err and f"kept {kept} frame(s)" in err
    assert summary["complete"] is False and summary["frames"] == kept and summary["last_frame"] == kept - 1
    assert count_frames(out) == kept  # the video was finalised
    assert all(len(f["faces"]) == 1 for f in frames)


def test_unreadable_video_is_a_one_line_error(tmp_path, obama_path, assets_dir, capsys):
    source = tmp_path / "head.mp4"
    source.write_bytes(obama_path.read_bytes()[:300_000])  # the index (moov) is at the end: gone
    out = tmp_path / "head_out.mp4"
    assert main(["video", str(source), "--output", str(out), "--assets", str(assets_dir), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ddfa: error: {source}: ") and "Traceback" not in "".join(err)
    assert not out.exists()
    for bad, message in ((tmp_path / "missing.mp4", "no such file"), (tmp_path, "folder")):
        with pytest.raises(VideoReadError, match=message):
            VideoSource(bad)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        VideoSource(text)
    with pytest.raises(VideoReadError, match="camera 97"):
        VideoSource(97)


def test_video_prepares_the_detector_for_its_frame_size(tmp_path, aligner, obama_path, obama_frames, monkeypatch):
    """The detector gets ready for the frame size (OpenVINO: its compiled model) from the file's
    first frame, before the loop; arrays and cameras tell no size in advance."""
    source = VideoSource(obama_path)
    assert source.frame_size == obama_frames[0].shape[:2]
    assert VideoSource(iter(obama_frames[:2])).frame_size is None
    prepared: list = []
    monkeypatch.setattr(aligner, "prepare", prepared.extend)
    process_video(source, None, records=tmp_path / "r.jsonl", aligner=aligner,
                  options=VideoOptions(max_frames=2, progress=False))
    assert prepared == [obama_frames[0].shape[:2]]


def test_process_video_from_arrays_records_only(tmp_path, aligner, obama_frames):
    small = [cv2.resize(f, (640, 360)) for f in obama_frames[:6]]
    rgb = [f[:, :, ::-1] for f in small]
    records = tmp_path / "r.jsonl"
    options = VideoOptions(smoothing="none", tracker=TrackerOptions(detect_every=3))
    summary = process_video(VideoSource(iter(rgb), fps=10.0, rgb=True), None, records=records, aligner=aligner,
                            options=options)
    assert summary.complete and summary.frames == 6 and summary.detector_runs == 2
    header, frames, end = read_records(records)
    assert header["fps"] == 10.0 and [f["time"] for f in frames] == pytest.approx(np.arange(6) / 10.0)
    # same faces as from the BGR frames
    bgr = aligner(small[0], crop_policy="landmarks")[0]
    np.testing.assert_allclose(frames[0]["faces"][0]["landmarks_68"], bgr.landmarks, atol=1e-2)
    assert end["tracks"][0]["frames"] == 6
    with pytest.raises(ddfa.InputError, match="unknown output"):
        VideoOptions(outputs=("2d_sparse", "hologram"))
    with pytest.raises(ddfa.InputError, match="must be VideoOptions"):
        process_video(iter(small), tmp_path / "x.mp4", aligner=aligner, options={"outputs": ["pose"]})
    with pytest.raises(ddfa.InputError, match="nothing to write"):
        process_video(iter(small), None, records=None, aligner=aligner)
    # a bad frame in the middle stops the run; what came before is kept
    broken = process_video([small[0], np.zeros((4, 4, 7))], None, records=tmp_path / "bad.jsonl", aligner=aligner)
    assert not broken.complete and broken.frames == 1 and "frame 1" in broken.problem
    assert read_records(tmp_path / "bad.jsonl")[2]["problem"] == broken.problem


def test_every_image_output_renders_on_video_frames(aligner, obama_tracks, obama_frames):
    """Overlays are dispatched by name: every registered output that draws on the frame works on
    tracked faces; outputs that are not frame-sized are refused up front."""
    from ddfa.render.outputs import image_output_names
    from ddfa.video import video_output_names

    _, results = obama_tracks
    result = results[3]
    result.image = obama_frames[3]
    try:
        names = video_output_names()
        assert "2d_sparse" in names
        expected = {"2d_sparse", "2d_dense", "3d", "depth", "pncc", "pose"} & set(image_output_names())
        assert expected <= set(names)
        for name in names:
            frame = render_frame(result, [name])
            assert frame.shape == obama_frames[3].shape and frame.dtype == np.uint8
            assert not np.array_equal(frame, obama_frames[3]), name
        assert np.array_equal(obama_frames[3], result.image)  # the input frame is not drawn on
        composed = render_frame(result, names[:3])
        assert composed.shape == obama_frames[3].shape
    finally:
        result.image = None
    for name in set(image_output_names()) - set(names):  # e.g. uv_tex, a texture atlas
        with pytest.raises(ddfa.InputError, match="not frame-sized"):
            video_output_names([name])


def test_track_labels_leave_the_pose_text_readable(obama_tracks, obama_frames):
    """A tracked face's ``#id`` label hides none of the ``pose`` overlay's yaw/pitch/roll text
    (both were drawn above the face: the label covered the yaw value), and it is drawn."""
    from ddfa.render.draw import draw_pose

    _, results = obama_tracks
    for index in (0, 3, 30):
        result, frame = results[index], obama_frames[index]
        text = np.any(draw_pose(frame, result.faces) != draw_pose(frame, result.faces, text=False), axis=2)
        assert text.sum() > 100  # the text is drawn
        result.image = frame
        try:
            without_ids, with_ids = render_frame(result, ["pose"], draw_ids=False), render_frame(result, ["pose"])
        finally:
            result.image = None
        label = np.any(with_ids != without_ids, axis=2)
        assert label.sum() > 100, index
        near_text = cv2.dilate(text.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert not (label & near_text).any(), index


def test_h264_writer(tmp_path, obama_frames):
    pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, 25.0, codec="h264") as writer:
        for frame in obama_frames[:5]:
            writer.write(cv2.resize(frame, (320, 180)))
    frames = [f.image for f in VideoSource(path)]
    assert len(frames) == 5 and frames[0].shape == (180, 320, 3)
    assert abs(VideoSource(path).frame_count - 5) <= 2  # an estimate (demuxed duration x fps)
