"""Video tracking: coverage, jitter with and without smoothing, error, and frames per second.

Usage::

    python benchmarks/bench_video.py [--video ../shared/data/video/obama.mp4] [--assets DIR]
                                     [--repeats 5] [--threads N] [--detect-every 10]

Printed, on one video (default: the shared obama.mp4, 55 frames of 1280x720, one face):

* **tracks**: number of track ids, frames with a face / all frames (coverage), detector runs;
* **jitter**: mean frame-to-frame landmark acceleration ``|x(t+1) - 2 x(t) + x(t-1)|`` over
  the 68 landmarks and all frames of each track, in pixels, and the same for the pose angles
  (degrees): per-frame detection-based alignment (the baseline), tracking without smoothing,
  causal One-Euro, offline (look-ahead) One-Euro;
* **error**: mean landmark distance (px) and NME (% of sqrt(w*h) of the reference landmark
  box) against per-frame detection-based alignment with two-step (landmark crop) refinement;
* **speed**: frames per second of the whole loop of :func:`ddfa.video.process_video` (decode,
  track, smooth, draw ``2d_sparse``, encode mp4v, write JSON lines) with the detector every 10
  frames (the default; also with its stages in turn, ``VideoOptions(sequential=True)``,
  instead of overlapping in threads) and on every frame, and of a per-frame baseline loop (decode, detect,
  align, draw, encode) measured in the same run; ratios are against that baseline. Each loop
  runs ``--repeats`` times, round-robin, and its fastest run is reported (the machine is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

import ddfa
from ddfa.face import Face
from ddfa.render import render_output
from ddfa.video import (
    FaceSmoother,
    SmoothingOptions,
    TrackerOptions,
    VideoOptions,
    VideoSource,
    VideoTracker,
    VideoWriter,
    process_video,
)

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "obama.mp4"


def jitter(series: np.ndarray) -> float:
    """Mean |x(t+1) - 2 x(t) + x(t-1)| of an (F, N, D) series (norm over D), or nan if F < 3."""
    if len(series) < 3:
        return float("nan")
    return float(np.linalg.norm(series[2:] - 2 * series[1:-1] + series[:-2], axis=-1).mean())


def per_track(results) -> dict[int, tuple[list[int], np.ndarray, np.ndarray]]:
    """track id -> (frame indices, (F, 68, 2) landmarks, (F, 3) poses)."""
    out: dict[int, tuple[list, list, list]] = {}
    for r in results:
        for f in r.faces:
            frames, lmk, pose = out.setdefault(f.track_id, ([], [], []))
            frames.append(r.index)
            lmk.append(f.landmarks[:, :2])
            pose.append(f.pose.as_array())
    return {k: (v[0], np.asarray(v[1], np.float64), np.asarray(v[2], np.float64)) for k, v in out.items()}


def track_jitter(results) -> tuple[float, float]:
    """Frame-weighted landmark (px) and pose (deg) jitter over all tracks."""
    values, poses, weights = [], [], []
    for _, lmk, pose in per_track(results).values():
        if len(lmk) >= 3:
            values.append(jitter(lmk))
            poses.append(float(np.abs(pose[2:] - 2 * pose[1:-1] + pose[:-2]).mean()))
            weights.append(len(lmk) - 2)
    return float(np.average(values, weights=weights)), float(np.average(poses, weights=weights))


def error_vs(results, reference: list[list]) -> tuple[float, float]:
    """Mean landmark distance (px) and NME (%) of tracked faces against per-frame faces
    (each tracked face against the reference face nearest to it)."""
    dists, nmes = [], []
    for r in results:
        for f in r.faces:
            refs = reference[r.index]
            if not refs:
                continue
            ref = min(refs, key=lambda g: np.linalg.norm(g.landmarks[:, :2].mean(0) - f.landmarks[:, :2].mean(0)))
            d = np.linalg.norm(f.landmarks[:, :2] - ref.landmarks[:, :2], axis=1).mean()
            w, h = np.ptp(ref.landmarks[:, :2], axis=0)
            dists.append(d)
            nmes.append(100 * d / np.sqrt(w * h))
    return float(np.mean(dists)), float(np.mean(nmes))


def baseline_loop(aligner, video: Path, out: Path) -> int:
    """Per-frame detection-based alignment with the same decode, draw and encode steps."""
    frames = 0
    with VideoWriter(out, 25.0) as writer:
        for frame in VideoSource(video):
            faces = aligner(frame.image)
            writer.write(render_output("2d_sparse", frame.image, faces))
            frames += 1
    return frames


def best_times(fns: dict, repeats: int) -> dict:
    """Fastest of ``repeats`` runs of each function after one warm-up, run round-robin so that
    load from other processes hits every configuration alike."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--assets", default=None, help="asset directory (default: $DDFA_HOME or ../shared/assets)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--detect-every", type=int, default=10)
    parser.add_argument("--detector", default=None, help="detector plug-in (default: ddfa's default, yunet)")
    args = parser.parse_args()
    assets = args.assets or (DEFAULT_VIDEO.parents[2] / "assets")
    aligner = ddfa.FaceAligner(assets=assets, threads=args.threads,
                               **({"detector": args.detector} if args.detector else {}))
    frames = [f.image for f in VideoSource(args.video)]
    fps = VideoSource(args.video).fps
    print(f"video: {args.video} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]}, {fps:g} fps); "
          f"{aligner}")

    # ---- tracking quality
    tracker = VideoTracker(aligner, TrackerOptions(detect_every=args.detect_every), smoothing="none")
    raw = list(tracker.track(frames, fps=fps))
    for r in raw:
        r.image = None
    covered = sum(1 for r in raw if r.faces)
    ids = sorted({f.track_id for r in raw for f in r.faces})
    print(f"\ntracks: {len(ids)} id(s) {ids}; frames with a face: {covered}/{len(raw)} "
          f"({100 * covered / len(raw):.1f}%); detector ran on {tracker.detector_runs} frame(s) "
          f"(every {args.detect_every})")
    for t in tracker.tracks:
        print(f"  track {t.id}: frames {t.first_frame}-{t.last_frame} ({t.frames}), ended: {t.end_reason}")

    reference = [aligner(f, crop_policy="landmarks") for f in frames]
    reference_box = [aligner(f) for f in frames]

    def as_results(per_frame):
        from ddfa.video.tracker import FrameResult, TrackedFace

        out = []
        for i, faces in enumerate(per_frame):
            tracked = [TrackedFace(**{f.name: getattr(g, f.name) for f in fields(Face)}, track_id=1 + j)
                       for j, g in enumerate(faces[:1])]
            out.append(FrameResult(i, i / fps, tracked))
        return out

    rows = [("per-frame detection, box crop", as_results(reference_box)),
            ("per-frame detection, two-step", as_results(reference)),
            ("tracking, no smoothing", raw)]
    for mode in ("causal", "offline"):
        smoothed = list(FaceSmoother(SmoothingOptions(mode=mode), aligner.morphable_model, fps=fps).smooth(raw))
        rows.append((f"tracking, {mode} One-Euro", smoothed))
    base_jitter = track_jitter(raw)[0]
    print(f"\n{'':34s} {'jitter px':>10s} {'vs raw':>7s} {'pose deg':>9s} {'err px':>7s} {'NME %':>6s}")
    for name, results in rows:
        jit, pose_jit = track_jitter(results)
        err, nme = error_vs(results, reference)
        print(f"{name:34s} {jit:10.2f} {jit / base_jitter:6.2f}x {pose_jit:9.2f} {err:7.2f} {nme:6.2f}")
    print("(error: against per-frame detection + two-step alignment; jitter: mean |x(t+1)-2x(t)+x(t-1)|)")

    # ---- speed of the whole loop
    print(f"\nspeed (best of {args.repeats}, whole loop: decode, track, smooth, draw, encode, records):")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = len(frames)
        every = args.detect_every
        fns = {"per-frame detect + align (baseline)": lambda: baseline_loop(aligner, args.video, tmp / "base.mp4")}
        configs = ((f"tracking, detector every {every}, causal", every, "causal", False),
                   (f"tracking, detector every {every}, offline", every, "offline", False),
                   ("the same, stages in turn (--sequential)", every, "offline", True),
                   ("detector on every frame, causal", 1, "causal", False))
        for name, detect_every, mode, sequential in configs:
            options = VideoOptions(tracker=TrackerOptions(detect_every=detect_every),
                                   smoothing=SmoothingOptions(mode=mode), sequential=sequential)
            fns[name] = lambda options=options: process_video(args.video, tmp / "out.mp4", aligner=aligner,
                                                              options=options)
        times = best_times(fns, args.repeats)
        base = times["per-frame detect + align (baseline)"]
        for name, t in times.items():
            print(f"  {name:44s} {n / t:7.1f} frames/s  {base / t:.2f}x")

if __name__ == "__main__":
    main()
