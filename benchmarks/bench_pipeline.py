"""Per-image latency of the photo pipeline: detection, regression + 68 landmarks, dense mesh.

Usage::

    python benchmarks/bench_pipeline.py [--assets DIR] [--repeats 50] [--threads N]

The frame is ``3DDFA_V2/examples/inputs/trump_hillary.jpg`` resized to 1280x720 (two faces).
Four configurations run in the same process on the same frame:

* ``ddfa``: the default path: YuNet (onnxruntime, 640 x 360 working resolution) and mb05
  (onnxruntime);
* ``faceboxes``: 3DDFA_V2's pipeline: FaceBoxes (onnxruntime, cached anchors, vectorised
  decoding/NMS) and mb05 (onnxruntime), the default before YuNet;
* ``fb-torch``: FaceBoxes and mb05 on eager torch (ddfa's reference path);
* ``plain``: eager torch with the anchors rebuilt by Python loops on every call, as a direct
  port of the original pipeline does (the in-run baseline).

Printed: median milliseconds per stage and in total, and each total's ratio to ``plain``; then
an interleaved A/B of the end-to-end call, ``ddfa`` against ``faceboxes`` (calls alternate so
that the machine's drift hits both alike), with the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import cv2
import numpy as np
import torch

import ddfa
from ddfa.detect.faceboxes import boxes as fb_boxes
from ddfa.morphable.frames import model_to_image
from ddfa.pipeline import crop_faces, roi_from_box


def python_loop_priors(height: int, width: int) -> np.ndarray:
    """Anchors built cell by cell in Python (what the original detector does on every call)."""
    out = []
    for step, sizes in zip(fb_boxes.STEPS, fb_boxes.MIN_SIZES):
        for i, j in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                offsets = {32: [0, 0.25, 0.5, 0.75], 64: [0, 0.5]}.get(size, [0.5])
                for dy, dx in itertools.product(offsets, offsets):
                    out.append([(j + dx) * step / width, (i + dy) * step / height, size / width, size / height])
    return np.array(out, np.float32)


def time_stage(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), result


def run_config(aligner: ddfa.FaceAligner, image: np.ndarray, repeats: int, plain: bool) -> dict[str, float]:
    detector = aligner.detector
    original_priors = fb_boxes.prior_boxes
    if plain:  # rebuild anchors every call, no cache
        fb_boxes.prior_boxes = python_loop_priors  # type: ignore[assignment]
        import ddfa.detect.faceboxes.detector as det_module

        det_module.prior_boxes = python_loop_priors
    try:
        t_detect, detections = time_stage(lambda: detector.detect(image), repeats)
    finally:
        if plain:
            import ddfa.detect.faceboxes.detector as det_module

            fb_boxes.prior_boxes = original_priors
            det_module.prior_boxes = original_priors
    rois = roi_from_box(detections.boxes, aligner.roi_mapping, detections.keypoints)
    model = aligner.morphable_model

    def regress():
        params = aligner.regressor(crop_faces(image, rois))
        return params, model_to_image(model.landmarks(params), rois)

    t_regress, (params, _) = time_stage(regress, repeats)
    t_dense, _ = time_stage(lambda: model_to_image(model.vertices(params), rois), repeats)
    t_total, faces = time_stage(lambda: aligner(image), repeats)
    return {"faces": len(faces), "detect": t_detect, "regress+68": t_regress, "dense": t_dense,
            "detect+align+68 (end to end)": t_total}


def interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median ms of each callable, calls alternating (A, B, A, B, ...) after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    store = ddfa.AssetStore(args.assets)
    photo = ddfa.read_image(store.path("3DDFA_V2/examples/inputs/trump_hillary.jpg"))
    frame = cv2.resize(photo, (1280, 720), interpolation=cv2.INTER_AREA)
    configs = {
        "ddfa": (ddfa.FaceAligner(assets=store, threads=args.threads), False),
        "faceboxes": (ddfa.FaceAligner(assets=store, threads=args.threads, detector="faceboxes"), False),
        "fb-torch": (ddfa.FaceAligner(assets=store, backend="torch", detector="faceboxes"), False),
        "plain": (ddfa.FaceAligner(assets=store, backend="torch", detector="faceboxes"), True),
    }
    results = {name: run_config(al, frame, args.repeats, plain) for name, (al, plain) in configs.items()}
    stages = [k for k in results["ddfa"] if k != "faces"]
    print(f"720p frame (1280x720, {results['ddfa']['faces']} faces), torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} runs, ms")
    print(f"{'stage':<30}" + "".join(f"{name:>12}" for name in results))
    for stage in stages:
        print(f"{stage:<30}" + "".join(f"{r[stage]:>12.2f}" for r in results.values()))
    base = results["plain"]["detect+align+68 (end to end)"]
    print(f"{'speed-up vs plain (end to end)':<30}" +
          "".join(f"{base / r['detect+align+68 (end to end)']:>11.2f}x" for r in results.values()))
    ab = interleaved({name: (lambda al=configs[name][0]: al(frame)) for name in ("ddfa", "faceboxes")}, args.repeats)
    print(f"interleaved A/B, end to end, median of {args.repeats} each: ddfa (YuNet) {ab['ddfa']:.2f} ms, "
          f"faceboxes {ab['faceboxes']:.2f} ms, ratio ddfa / faceboxes {ab['ddfa'] / ab['faceboxes']:.2f}")


if __name__ == "__main__":
    main()
