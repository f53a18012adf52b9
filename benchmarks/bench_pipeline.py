"""End-to-end latency of the photo pipeline on every engine, and what each precision costs.

Usage::

    python benchmarks/bench_pipeline.py --assets ../shared/assets --data ../shared/data/aflw2000-3d \
        [--repeats 40] [--threads N] [--photos 300]

The frame is ``3DDFA_V2/examples/inputs/trump_hillary.jpg`` resized to 1280x720 (two faces).
Configurations, on the same frame, each in its own process (one engine per process, as in
use), *interleaved* (rounds in which every configuration's process times a short block of
calls, so that a machine whose speed drifts affects all alike):

* ``plain``: 3DDFA_V2's pipeline (FaceBoxes + mb05) on eager torch with the anchors rebuilt by
  Python loops on every call, as a direct port of the original code does (the in-run baseline);
* ``onnxruntime``: the default pipeline (YuNet at its 640-pixel working resolution + mb05) on
  onnxruntime, float32: the default before OpenVINO (the reference of the ``vs onnxrt`` column);
* ``openvino-f32``, ``openvino-bf16`` (``backend="auto"`` on CPUs with AMX or AVX-512-BF16),
  ``openvino-bf16-int8`` (int8 regressor): the default pipeline on OpenVINO;
* ``fb-torch``, ``fb-onnxruntime``, ``fb-openvino-bf16``, ``fb-openvino-bf16-graph-resize``:
  FaceBoxes + mb05 on each engine (the last with FaceBoxes' resize inside OpenVINO's graph
  instead of OpenCV's).

Printed: median ms per stage and end to end, each end-to-end median's ratio to ``plain`` and to
``onnxruntime``. With ``--data``: the AFLW2000-3D NME (68 points, 2000 crops, mean of the yaw-bin
means, 3DDFA's protocol) of the regressor in each precision, and with ``--photos N`` the
end-to-end NME and detection rate on the first N of the 1700 development photos
(``AFLW2000-full``, detector included, the protocol of the data README), each against float32.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# torch's OpenMP threads otherwise spin for a while after each call, taking the cores from the
# configuration timed next (set before torch is imported; ddfa imports it only for torch configs)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2
import numpy as np

import ddfa
from ddfa.detect.faceboxes import FaceBoxesDetector
from ddfa.detect.faceboxes import boxes as fb_boxes
from ddfa.detect.faceboxes import detector as fb_detector
from ddfa.morphable.frames import model_to_image
from ddfa.pipeline import crop_faces, roi_from_box

CONFIGS = {  # name: (detector, BaseOptions fields, regressor precision or None (same), FaceBoxes resize in graph)
    "plain": ("faceboxes", {"backend": "torch", "precision": "f32"}, None, False),
    "onnxruntime": ("yunet", {"backend": "onnxruntime", "precision": "f32"}, None, False),
    "openvino-f32": ("yunet", {"backend": "openvino", "precision": "f32"}, None, False),
    "openvino-bf16": ("yunet", {"backend": "openvino", "precision": "bf16"}, None, False),
    "openvino-bf16-int8": ("yunet", {"backend": "openvino", "precision": "bf16"}, "int8", False),
    "fb-torch": ("faceboxes", {"backend": "torch", "precision": "f32"}, None, False),
    "fb-onnxruntime": ("faceboxes", {"backend": "onnxruntime", "precision": "f32"}, None, False),
    "fb-openvino-bf16": ("faceboxes", {"backend": "openvino", "precision": "bf16"}, None, False),
    "fb-openvino-bf16-graph-resize": ("faceboxes", {"backend": "openvino", "precision": "bf16"}, None, True),
}


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


def make_aligner(store, threads, detector_name: str, fields: dict, regressor_precision: str | None,
                 graph_resize: bool):
    base = ddfa.BaseOptions(assets=store, threads=threads, **fields)
    regressor = ddfa.create_model("mb05", base_options=base.replace(precision=regressor_precision or base.precision))
    aligner = ddfa.FaceAligner(regressor, detector_name, base_options=base)
    if isinstance(aligner.detector, FaceBoxesDetector):
        aligner.detector.resize_in_graph = graph_resize
    return aligner


def stage_functions(aligner: ddfa.FaceAligner, image: np.ndarray, plain: bool) -> dict:
    model = aligner.morphable_model
    found = aligner.detect(image)
    rois = roi_from_box(found.boxes, aligner.roi_mapping, found.keypoints)

    def detect():
        if not plain:
            return aligner.detector.detect(image)
        saved = fb_detector.prior_boxes
        fb_detector.prior_boxes = python_loop_priors  # type: ignore[assignment]
        try:
            return aligner.detector.detect(image)
        finally:
            fb_detector.prior_boxes = saved

    def regress():
        params = aligner.regressor(crop_faces(image, rois))
        return model_to_image(model.landmarks(params), rois)

    def end_to_end():
        if not plain:
            return aligner(image)
        saved = fb_detector.prior_boxes
        fb_detector.prior_boxes = python_loop_priors  # type: ignore[assignment]
        try:
            return aligner(image)
        finally:
            fb_detector.prior_boxes = saved

    return {"detect": detect, "regress+68": regress, "end to end": end_to_end}


def time_block(functions: dict, repeats: int) -> dict[str, list[float]]:
    """ms of ``repeats`` runs of each stage (after two untimed warm-up runs)."""
    out: dict[str, list[float]] = {}
    for stage, fn in functions.items():
        fn(), fn()
        out[stage] = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            out[stage].append((time.perf_counter() - start) * 1e3)
    return out


def worker(args) -> None:
    """One configuration in its own process: time a block of runs, print them as JSON."""
    store = ddfa.AssetStore(args.assets)
    photo = ddfa.read_image(store.path("3DDFA_V2/examples/inputs/trump_hillary.jpg"))
    frame = cv2.resize(photo, (1280, 720), interpolation=cv2.INTER_AREA)
    aligner = make_aligner(store, args.threads, *CONFIGS[args.worker])
    samples = time_block(stage_functions(aligner, frame, args.worker == "plain"), args.block)
    print(json.dumps({"faces": len(aligner(frame)), "samples": samples}))


def interleaved(configs: list[str], args) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Median ms of every (config, stage): each configuration runs in its own process (one
    engine per process, as in use), in rounds of one block of ``--block`` runs per
    configuration, each round starting one configuration later, until ``--repeats`` runs."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in configs}
    faces: dict[str, int] = {}
    rounds = max(1, math.ceil(args.repeats / args.block))
    for r in range(rounds):
        for name in configs[r % len(configs):] + configs[:r % len(configs)]:
            argv = [sys.executable, __file__, "--worker", name, "--block", str(args.block)]
            if args.assets:
                argv += ["--assets", args.assets]
            if args.threads:
                argv += ["--threads", str(args.threads)]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            faces[name] = result["faces"]
            for stage, values in result["samples"].items():
                samples[name].setdefault(stage, []).extend(values)
    return ({name: {stage: statistics.median(v) for stage, v in stages.items()} for name, stages in samples.items()},
            faces)


def crop_nme(store, data_dir: Path, precisions: list[tuple[str, str]]) -> dict[str, float]:
    from ddfa.eval import run_aflw2000

    out = {}
    for backend, precision in precisions:
        regressor = ddfa.create_model("mb05", assets=store, backend=backend, precision=precision)
        result = run_aflw2000(regressor, assets=store, data_dir=data_dir)
        out[f"{backend}-{precision}"] = result.results["nme"]["ori/pose"]["mean_of_bins"]
    return out


def photo_nme(aligner: ddfa.FaceAligner, data_dir: Path, count: int) -> tuple[float, float]:
    """End-to-end NME (mean of yaw-bin means, %) and detection rate on the first ``count``
    development photos: per photo the detected face whose landmark centre is nearest the ground
    truth's; found when nearer than sqrt(w*h) of the ground-truth box."""
    ann = np.load(data_dir / "aflw2000_3d_annotations.npz")
    index = {str(n): i for i, n in enumerate(ann["names"])}
    photos = sorted((data_dir / "AFLW2000-full").glob("*.jpg"))[:count]
    errors, yaws, found = [], [], 0
    for path in photos:
        k = index[path.name]
        gt = ann["pts68"][k][:2].T  # (68, 2)
        lo, hi = gt.min(0), gt.max(0)
        norm = math.sqrt(float(np.prod(hi - lo)))
        faces = aligner(str(path))
        if not faces:
            continue
        centres = np.array([f.landmarks[:, :2].mean(0) for f in faces])
        best = int(np.argmin(np.linalg.norm(centres - gt.mean(0), axis=1)))
        if np.linalg.norm(centres[best] - gt.mean(0)) >= norm:
            continue
        found += 1
        errors.append(float(np.linalg.norm(faces[best].landmarks[:, :2] - gt, axis=1).mean() / norm))
        yaws.append(abs(float(ann["yaw_3ddfa"][k])))
    err, yaw = np.array(errors), np.array(yaws)
    bins = [err[yaw <= 30], err[(yaw > 30) & (yaw <= 60)], err[yaw > 60]]
    means = [b.mean() for b in bins if b.size]
    return 100 * float(np.mean(means)), found / max(len(photos), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.add_argument("--data", default=None, help="the aflw2000-3d data folder (for the NME figures)")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--photos", type=int, default=0, help="end-to-end NME on this many development photos")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--block", type=int, default=5, help="timed runs per configuration per round")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    store = ddfa.AssetStore(args.assets)
    if not ddfa.nets.engines.openvino_available():
        args.configs = [c for c in args.configs if "openvino" not in c]
    results, faces = interleaved(args.configs, args)

    print(f"720p frame (1280x720, faces found {faces}), threads {args.threads or 'all'}, median of "
          f"{args.repeats}+ runs, each configuration in its own process, interleaved in blocks of {args.block}, ms")
    width = max(len(n) for n in results) + 2
    stages = list(next(iter(results.values())))
    print(f"{'config':<{width}}" + "".join(f"{s:>14}" for s in stages) + f"{'vs plain':>10}{'vs onnxrt':>11}")
    base = results.get("plain", {}).get("end to end")
    ort = results.get("onnxruntime", {}).get("end to end")
    for name, row in results.items():
        total = row["end to end"]
        print(f"{name:<{width}}" + "".join(f"{row[s]:>14.2f}" for s in stages)
              + (f"{total / base:>9.2f}x" if base else f"{'':>10}") + (f"{total / ort:>10.2f}x" if ort else ""))
    sys.stdout.flush()
    if args.data:
        data = Path(args.data)
        nme = crop_nme(store, data, [("onnxruntime", "f32")] + [("openvino", p) for p in ("f32", "bf16", "int8")
                                                                  if ddfa.nets.engines.openvino_available()])
        ref = nme["onnxruntime-f32"]
        print("\nAFLW2000-3D NME (%, 2000 crops, regressor only, ori GT, mean of yaw bins):")
        for name, value in nme.items():
            print(f"  {name:<20} {value:.4f}  ({value - ref:+.4f} vs f32)")
        if args.photos:
            print(f"\nend to end on {args.photos} development photos (AFLW2000-full, detector included):")
            ref_photo = None
            for name in ("onnxruntime", "openvino-f32", "openvino-bf16", "openvino-bf16-int8"):
                if name in args.configs:
                    value, rate = photo_nme(make_aligner(store, args.threads, *CONFIGS[name]), data, args.photos)
                    ref_photo = value if ref_photo is None else ref_photo
                    print(f"  {name:<20} NME {value:.4f}  ({value - ref_photo:+.4f} vs f32)  detected {rate:.1%}")


if __name__ == "__main__":
    main()
