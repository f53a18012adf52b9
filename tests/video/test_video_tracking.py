"""Tracking and smoothing on real frames: obama.mp4 and a synthetic clip of two crossing faces."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.morphable.frames import model_to_image, params_from_image, params_to_image, roi_affine
from ddfa.morphable.params import coefficients, join_params, pose_matrix
from ddfa.video import FaceSmoother, SmoothingOptions, TrackerOptions, VideoOptions, VideoTracker
from ddfa.video.smoothing import carry_boxes


def jitter(landmarks: np.ndarray) -> float:
    """Mean frame-to-frame acceleration |x(t+1) - 2x(t) + x(t-1)| of (F, 68, 2) landmarks, px."""
    return float(np.linalg.norm(landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2], axis=2).mean())


def stacked(results) -> np.ndarray:
    return np.stack([r.faces[0].landmarks[:, :2] for r in results]).astype(np.float64)


# ---------------------------------------------------------------------- obama.mp4
def test_obama_one_track_in_every_frame(obama_tracks, obama_frames):
    tracker, results = obama_tracks
    assert [r.index for r in results] == list(range(len(obama_frames))) and len(results) == 55
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 1 for r in results)
    # detector on frames 0, 10, 20, ...: nothing looked unsure on this clip
    assert [r.index for r in results if r.detected] == list(range(0, 55, 10))
    assert tracker.detector_runs == 6
    assert all(r.faces[0].confirmed == r.detected for r in results)
    (track,) = tracker.tracks
    assert (track.first_frame, track.last_frame, track.frames, track.end_reason) == (0, 54, 55, "end of video")
    assert results[0].events[0].to_dict() == {"track_id": 1, "event": "start"}
    # the face is where the detector says it is; on a detector frame its box is the detection's
    face = results[20].faces[0]
    np.testing.assert_allclose(face.landmark_box[:2], face.landmarks[:, :2].min(axis=0), atol=1e-4)
    det = tracker.aligner.detect(obama_frames[20])
    np.testing.assert_allclose(face.box, det.boxes[0], atol=1e-3)
    centre = face.landmarks[:, :2].mean(axis=0)
    assert det.boxes[0, 0] < centre[0] < det.boxes[0, 2] and det.boxes[0, 1] < centre[1] < det.boxes[0, 3]
    # between detector runs the box follows the face: the same offset from the landmark box as at
    # the last detection, scaled with it
    for k in range(21, 30):
        now = results[k].faces[0]
        np.testing.assert_allclose(now.box, carry_boxes(face.box, face.landmark_box, now.landmark_box), atol=1e-3)
    moved = results[29].faces[0]
    assert np.abs(moved.landmark_box - face.landmark_box).max() > 1  # the face did move


def test_obama_smoothing_cuts_jitter_and_stays_close(aligner, obama_tracks, obama_frames):
    _, raw = obama_tracks
    frames = range(0, len(obama_frames), 3)
    reference = np.stack([aligner(obama_frames[i], crop_policy="landmarks")[0].landmarks[:, :2] for i in frames])
    box = np.ptp(reference, axis=1)
    norm = np.sqrt(box[:, 0] * box[:, 1])[:, None]

    def nme(landmarks):  # percent of sqrt(w*h) of the reference landmark box
        return float((np.linalg.norm(landmarks[list(frames)] - reference, axis=2) / norm).mean() * 100)

    stats = {"none": (jitter(stacked(raw)), nme(stacked(raw)))}
    for mode in ("causal", "offline"):
        smoothed = list(FaceSmoother(mode, aligner.morphable_model, fps=25.0).smooth(raw))
        assert [r.index for r in smoothed] == list(range(55))
        stats[mode] = (jitter(stacked(smoothed)), nme(stacked(smoothed)))
        poses = np.stack([r.faces[0].pose.as_array() for r in smoothed])
        raw_poses = np.stack([r.faces[0].pose.as_array() for r in raw])
        assert np.abs(np.diff(poses, 2, axis=0)).mean() < 0.7 * np.abs(np.diff(raw_poses, 2, axis=0)).mean()
        assert smoothed[5].faces[0].raw is raw[5].faces[0]
    # measured: jitter 3.8 -> 2.2 (causal) -> 1.5 px (offline); NME 0.5, 1.2, 0.8 %
    assert stats["causal"][0] < 0.7 * stats["none"][0]
    assert stats["offline"][0] < 0.5 * stats["none"][0]
    assert stats["none"][1] < 1.0
    assert stats["causal"][1] < 2.0 and stats["offline"][1] < 1.5
    stronger = list(FaceSmoother(SmoothingOptions(strength=2.0), aligner.morphable_model).smooth(raw))
    assert jitter(stacked(stronger)) < stats["causal"][0]


def test_detector_on_every_frame(aligner, obama_frames):
    tracker = VideoTracker(aligner, TrackerOptions(detect_every=1), smoothing="none")
    results = list(tracker.track(obama_frames[:8]))
    assert tracker.detector_runs == 8 and all(r.detected and r.faces[0].confirmed for r in results)
    assert {f.track_id for r in results for f in r.faces} == {1}


# ---------------------------------------------------------------------- synthetic clip
def test_synthetic_faces_crossing_leaving_and_returning(aligner, synthetic_clip):
    clip = synthetic_clip
    every = 5
    tracker = VideoTracker(aligner, TrackerOptions(detect_every=every), smoothing="causal")
    results = list(tracker.track(clip.frames, fps=25.0))
    assert len(results) == len(clip.frames)
    names = list(clip.centres)
    owner: dict[int, set] = {}
    frames_of: dict[int, list] = {}
    for r in results:
        ids = [f.track_id for f in r.faces]
        assert len(ids) == len(set(ids))
        assert len(ids) <= sum(clip.present[n][r.index] for n in names)  # no ghost faces
        for face in r.faces:
            centre = face.landmarks[:, :2].mean(axis=0)
            dist = {n: np.linalg.norm(centre - clip.centres[n][r.index]) for n in names if clip.present[n][r.index]}
            name = min(dist, key=dist.get)
            assert dist[name] < 0.4 * clip.patch, (r.index, face.track_id, dist)
            owner.setdefault(face.track_id, set()).add(name)
            frames_of.setdefault(face.track_id, []).append(r.index)
    # ids never swap: every track follows one face, without gaps
    assert all(len(v) == 1 for v in owner.values()), owner
    for tid, idx in frames_of.items():
        assert idx == list(range(idx[0], idx[-1] + 1)), tid
    by_name = {n: sorted(t for t, v in owner.items() if n in v) for n in names}
    # jianzhu (in front at the crossing) keeps one id for the whole clip
    (jianzhu,) = by_name["jianzhu"]
    assert frames_of[jianzhu] == list(range(len(clip.frames)))
    # emma: one id until she leaves the frame, a new one after she comes back
    first, second = by_name["emma"]
    assert frames_of[first][0] == 0 and 30 <= frames_of[first][-1] <= 38
    gone = np.flatnonzero(~clip.present["emma"])
    back = int(np.flatnonzero(clip.inside["emma"] & (np.arange(len(clip.frames)) > gone[-1]))[0])
    assert second > max(first, jianzhu)
    assert gone[-1] < frames_of[second][0] <= back + every and frames_of[second][-1] == len(clip.frames) - 1
    # every face wholly inside the frame is tracked (but for the detection delay after re-entry)
    for r in results:
        tracked = {next(iter(owner[f.track_id])) for f in r.faces}
        for n in names:
            if clip.inside[n][r.index] and not (n == "emma" and back <= r.index < frames_of[second][0]):
                assert n in tracked, (r.index, n)
    ended = {t.id: t.end_reason for t in tracker.tracks}
    assert "lost" in ended[first] or "left" in ended[first]
    events = [(e.track_id, e.event) for r in results for e in r.events]
    assert events.count((second, "start")) == 1 and (first, "end") in events


# ---------------------------------------------------------------------- smoothing details
def test_image_frame_parameters_round_trip(obama_tracks):
    """``morphable.frames.params_to_image``: the pose absorbs the roi's model -> image map, so
    the model reconstructs image pixels directly; ``params_from_image`` undoes it."""
    faces = [r.faces[0] for r in obama_tracks[1][:5]]
    params = np.stack([f.params for f in faces])
    rois = np.stack([f.roi_box for f in faces])
    model = faces[0].model
    q = params_to_image(params, rois)
    assert q.shape == (5, 62) and q.dtype == np.float64
    np.testing.assert_array_equal(q[:, 12:], params[:, 12:])  # shape and expression unchanged
    np.testing.assert_allclose(model.landmarks(q), np.stack([f.landmarks for f in faces]), atol=2e-3)
    dense = model.vertices(q[:1])[0]
    np.testing.assert_allclose(dense, model_to_image(model.vertices(params[:1].astype(np.float64)), rois[:1])[0],
                               atol=1e-6)
    np.testing.assert_allclose(params_from_image(q, rois), params, rtol=1e-6, atol=1e-7)
    # one face, unbatched; and the affine map itself is model_to_image's
    np.testing.assert_allclose(params_to_image(params[0], rois[0]), q[0])
    a, b = roi_affine(rois[0])
    points = np.random.default_rng(0).normal(0, 50, (10, 3))
    np.testing.assert_allclose(points * a + b, model_to_image(points, rois[0]), atol=1e-9)


def test_image_frame_parameters_in_torch(obama_tracks):
    torch = pytest.importorskip("torch")
    face = obama_tracks[1][0].faces[0]
    p = torch.tensor(face.params[None], dtype=torch.float64)
    roi = torch.tensor(face.roi_box[None], dtype=torch.float64)
    q = params_to_image(p, roi)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float64
    np.testing.assert_allclose(q.numpy(), params_to_image(face.params[None], face.roi_box[None]), atol=1e-9)
    np.testing.assert_allclose(params_from_image(q, roi).numpy(), face.params[None], rtol=1e-6, atol=1e-7)


def test_carry_boxes_follows_the_reference_box():
    box = np.array([10.0, 20.0, 50.0, 80.0])
    before = np.array([15.0, 30.0, 45.0, 70.0])
    np.testing.assert_allclose(carry_boxes(box, before, before), box)
    after = before * 2 + 5  # doubled about the origin, then shifted
    np.testing.assert_allclose(carry_boxes(box, before, after), box * 2 + 5, atol=1e-5)
    batch = carry_boxes(np.stack([box, box]), np.stack([before, before]), np.stack([before, after]))
    assert batch.shape == (2, 4) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1], box * 2 + 5, atol=1e-5)


def _rolled(face, angles_deg, centre):
    """Copies of ``face`` rotated in the image plane by each angle about ``centre`` (x, y)."""
    from ddfa.video.smoothing import smoothed_faces

    q = params_to_image(face.params, face.roi_box)
    out = []
    for a in np.radians(angles_deg):
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        shift = np.array([centre[0], centre[1], 0.0])
        pose = pose_matrix(q)  # image frame: rotate about the centre
        rotated = np.concatenate([rot @ pose[:, :3], (rot @ (pose[:, 3] - shift) + shift)[:, None]], axis=1)
        new = join_params(rotated, coefficients(q))
        out.append(smoothed_faces([face], new[None], face.model)[0])
    return out


def test_pose_smoothing_has_no_wraparound(obama_tracks):
    """Roll crossing +-180 degrees: smoothing rotations, never angles, keeps it continuous."""
    from dataclasses import replace

    from ddfa.video.tracker import FrameResult

    _, raw = obama_tracks
    face = raw[0].faces[0]
    centre = face.landmarks[:, :2].mean(axis=0)
    base = face.pose.roll
    rng = np.random.default_rng(1)
    angles = np.linspace(165, 195, 20) - base + rng.normal(0, 1.0, 20)
    faces = _rolled(face, angles, centre)
    for mode in ("causal", "offline"):
        smoother = FaceSmoother(SmoothingOptions(mode=mode, lookahead=3), face.model, fps=25.0)
        stream = [FrameResult(i, i / 25.0, [replace(f, raw=None)]) for i, f in enumerate(faces)]
        out = list(smoother.smooth(stream))
        truth = np.array([f.pose.roll for f in faces])
        rolls = np.array([r.faces[0].pose.roll for r in out])
        assert np.all(np.abs(np.abs(rolls) - 180) < 20)  # never averaged through 0
        gap = (rolls - truth + 180) % 360 - 180
        assert np.abs(gap).max() < 6, (mode, gap)


def test_offline_smoother_delays_and_keeps_tracks_apart(obama_tracks):
    from dataclasses import replace

    from ddfa.video.smoothing import smoothed_faces
    from ddfa.video.tracker import FrameResult

    _, raw = obama_tracks
    stream = []
    for r in raw[:20]:
        faces = list(r.faces)
        if 5 <= r.index <= 12:  # a second track, 400 px to the left, for 8 frames only
            f = r.faces[0]
            q = params_to_image(f.params[None], f.roi_box[None])
            pose = pose_matrix(q) - np.array([[400.0, 0, 0]]).T * [0, 0, 0, 1]  # 400 px to the left
            q = join_params(pose, coefficients(q))
            moved = smoothed_faces([f], q, f.model)[0]
            faces.append(replace(moved, track_id=2, raw=None))
        stream.append(FrameResult(r.index, r.time, faces))
    smoother = FaceSmoother(SmoothingOptions(mode="offline", lookahead=4), fps=25.0)
    out = []
    for i, result in enumerate(stream):
        ready = smoother.push(result)
        assert len(ready) == (0 if i < 4 else 1)
        out.extend(ready)
    out.extend(smoother.flush())
    assert [r.index for r in out] == list(range(20))
    for before, after in zip(stream, out):
        assert [f.track_id for f in after.faces] == [f.track_id for f in before.faces]
        for f_in, f_out in zip(before.faces, after.faces):
            assert np.abs(f_out.landmarks[:, :2] - f_in.landmarks[:, :2]).mean() < 15
            assert f_out.raw is f_in


def test_options_are_checked(aligner):
    with pytest.raises(ddfa.InputError, match="detect_every"):
        TrackerOptions(detect_every=-1)
    with pytest.raises(ddfa.InputError, match="must be TrackerOptions"):
        VideoTracker(aligner, {"detect_every": 3})
    with pytest.raises(TypeError):
        TrackerOptions(detect_evry=3)
    with pytest.raises(TypeError):  # keyword-only
        SmoothingOptions("offline")
    with pytest.raises(ddfa.InputError, match="detect_every must be an integer"):
        TrackerOptions(detect_every=2.5)
    with pytest.raises(ddfa.InputError, match="match_iou"):
        TrackerOptions(match_iou=1.5)
    with pytest.raises(ddfa.InputError, match="lookahead"):
        SmoothingOptions(mode="offline", lookahead=0)
    with pytest.raises(ddfa.InputError, match="codec"):
        VideoOptions(codec="divx")
    with pytest.raises(ddfa.InputError, match="fps"):
        VideoOptions(fps=0)
    with pytest.raises(ddfa.InputError, match="unknown output"):
        VideoOptions(outputs=("hologram",))
    with pytest.raises(ddfa.InputError, match="sequence of names"):
        VideoOptions(outputs="pose")
    options = VideoOptions(outputs=["pose", "2d_sparse"], smoothing="offline")  # converted
    assert options.outputs == ("pose", "2d_sparse") and options.smoothing == SmoothingOptions(mode="offline")
    with pytest.raises(ddfa.InputError, match="smoothing mode"):
        VideoTracker(aligner, smoothing="sometimes")
    with pytest.raises(ddfa.InputError, match="min_cutoff"):
        SmoothingOptions(min_cutoff=0)
    with pytest.raises(ddfa.InputError, match="detector"):
        VideoTracker(ddfa.FaceAligner(detector=None, assets=aligner.assets))
