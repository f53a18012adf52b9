"""End to end on the AFLW2000-3D development photos: refinement, confidence calibration, ranking.

Issue #15. On the 1700 full photos of ``../shared/data/aflw2000-3d/AFLW2000-full`` (the other 300
are held out: never read here), with the detector given by ``--detector`` (any registered
plug-in; default yunet, ddfa's default detector):

1. detect once per photo (the detections keep the detector's own box-to-roi rule and 5 points);
   align every detected face with the landmark crop policy and
   ``refine`` = none, flip and full (same boxes for all three, so the detection rate cannot
   differ by more than the matching below), timing the alignment per face;
2. score the end-to-end protocol of ``../shared/data/README.md``: per photo the detected face
   whose landmark centre is nearest the ground-truth centre, found when that distance is below
   sqrt(w*h) of the ground-truth box; NME (68 points, sqrt(w*h) of the GT box) over found
   photos, per |yaw| bin (``AFLW2000-3D.pose.npy``) and mean of bins; both annotation sets;
3. fit the confidence calibration of each refinement mode (logistic regression of "NME below
   ddfa.pipeline.confidence.GOOD_NME" on ln(uncertainty), maximum likelihood), check it by
   two-fold cross-validation (even/odd photos: predicted vs observed share of good faces per
   confidence decile), and measure how the confidence ranks faces by error: Spearman
   correlation with the per-face NME, and the NME of the least confident 10% vs the rest.

    python experiments/refine_photos.py --assets ../shared/assets --out out/refine_photos

Writes ``photos.json`` (every figure), ``calibration.json`` (the fitted constants, to be copied
into ``ddfa/pipeline/confidence.py``) and ``photos.md`` to ``--out``; per-photo results are cached
in ``aligned_<mode>.npz`` so that a rerun only re-scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ddfa
from ddfa.eval.protocols import summarize_bins
from ddfa.pipeline.confidence import GOOD_NME

MODES = ("none", "flip", "full")


def load_ground_truth(data: Path, assets: Path):
    ann = np.load(data / "aflw2000_3d_annotations.npz")
    names = [str(n) for n in ann["names"]]
    dev = sorted(p.name for p in (data / "AFLW2000-full").glob("*.jpg"))
    rows = np.array([names.index(n) for n in dev])
    re = np.load(assets / "3DDFA/test.configs/AFLW2000-3D-Reannotated.pts68.npy")
    gt = {"ori": ann["pts68"][rows, :2].transpose(0, 2, 1).astype(np.float64),
          "re": re[rows, :2].transpose(0, 2, 1).astype(np.float64)}
    return dev, rows, gt, ann["yaw_3ddfa"][rows].astype(np.float64)


def align_all(aligner, folder: Path, names, boxes_cache: Path, mode: str, out: Path):
    """Per photo: all faces' landmarks (list of (K, 68, 3)), uncertainties, and timing."""
    cache = out / f"aligned_{mode}.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=True)
        return list(data["landmarks"]), list(data["uncertainty"]), float(data["seconds"]), int(data["faces"])
    boxes = load_detections(aligner, boxes_cache)
    landmarks, uncertainty, seconds, faces = [], [], 0.0, 0
    first = next(k for k in range(len(names)) if len(boxes[k]))  # warm-up (mirror maps, kernels), not timed
    aligner(ddfa.read_image(folder / names[first]), boxes=boxes[first], crop_policy="landmarks", refine=mode)
    for k, name in enumerate(names):
        image = ddfa.read_image(folder / name)
        start = time.perf_counter()
        result = aligner(image, boxes=boxes[k], crop_policy="landmarks", refine=mode) if len(boxes[k]) else []
        seconds += time.perf_counter() - start
        faces += len(result)
        landmarks.append(np.stack([f.landmarks for f in result]) if result else np.zeros((0, 68, 3), np.float32))
        uncertainty.append(np.array([np.nan if f.uncertainty is None else f.uncertainty for f in result]))
        if (k + 1) % 200 == 0:
            print(f"  {mode}: {k + 1}/{len(names)} photos", flush=True)
    lm = np.empty(len(landmarks), dtype=object)
    lm[:] = landmarks
    un = np.empty(len(uncertainty), dtype=object)
    un[:] = uncertainty
    np.savez(cache, landmarks=lm, uncertainty=un, seconds=seconds, faces=faces)
    return landmarks, uncertainty, seconds, faces


def load_detections(aligner, boxes_cache: Path) -> list:
    """The cached detections of every photo as :class:`ddfa.detect.Detections` of ``aligner``'s
    detector (its roi rule, its 5 points where it gives them)."""
    from ddfa.detect import Detections

    data = np.load(boxes_cache, allow_pickle=True)
    out = []
    for rows, points in zip(data["boxes"], data["keypoints"]):
        rows = np.asarray(rows, np.float32).reshape(-1, 5)
        out.append(Detections(rows[:, :4], rows[:, 4], None if points is None else np.asarray(points, np.float32),
                              aligner.roi_mapping))
    return out


def match(landmarks, gt):
    """Per photo: index of the face nearest the GT centre, or -1 when none is close enough."""
    out = np.full(len(gt), -1)
    for k, faces in enumerate(landmarks):
        if not len(faces):
            continue
        g = gt[k]
        size = np.sqrt(np.prod(g.max(0) - g.min(0)))
        centre = (g.max(0) + g.min(0)) / 2
        pts = faces[..., :2]
        centres = (pts.max(1) + pts.min(1)) / 2
        dist = np.linalg.norm(centres - centre, axis=1)
        if dist.min() < size:
            out[k] = int(dist.argmin())
    return out


def per_face_nme(pred, gt):
    size = np.sqrt(np.prod(gt.max(1) - gt.min(1), axis=1))
    return np.linalg.norm(pred - gt, axis=-1).mean(1) / size


def fit_logistic(x, y, iterations: int = 50):
    """Maximum-likelihood (a, b) of P(y) = sigmoid(a + b x) (Newton's method)."""
    a, b = 0.0, 0.0
    X = np.stack([np.ones_like(x), x], 1)
    w = np.array([a, b])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (y - p)
        hess = -(X * (p * (1 - p))[:, None]).T @ X - 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def reliability(conf, good, bins: int = 5):
    order = np.argsort(conf)
    rows = []
    for chunk in np.array_split(order, bins):
        rows.append({"predicted": float(conf[chunk].mean()), "observed": float(good[chunk].mean()), "n": len(chunk)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default="../shared/assets")
    parser.add_argument("--data", default="../shared/data/aflw2000-3d")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--out", default="out/refine_photos")
    parser.add_argument("--limit", type=int, default=None, help="first N photos only (a quick check)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, assets = Path(args.data), Path(args.assets)
    names, rows, gt, yaw = load_ground_truth(data, assets)
    if args.limit:
        names, rows, yaw = names[: args.limit], rows[: args.limit], yaw[: args.limit]
        gt = {k: v[: args.limit] for k, v in gt.items()}
    aligner = ddfa.FaceAligner(assets=args.assets, detector=args.detector, precision="f32")
    boxes_cache = out / "boxes.npz"
    if not boxes_cache.exists():
        boxes, points = [], []
        start = time.perf_counter()
        for name in names:
            det = aligner.detect(ddfa.read_image(data / "AFLW2000-full" / name))
            boxes.append(np.concatenate([det.boxes, det.scores[:, None]], 1))
            points.append(det.keypoints)
        arr, kp = np.empty(len(boxes), dtype=object), np.empty(len(points), dtype=object)
        arr[:], kp[:] = boxes, points
        np.savez(boxes_cache, boxes=arr, keypoints=kp, seconds=time.perf_counter() - start)
    report: dict = {"photos": len(names), "detector": args.detector, "crop_policy": "landmarks",
                    "good_nme": GOOD_NME, "modes": {}}
    calibration = {}
    for mode in MODES:
        landmarks, uncertainty, seconds, faces = align_all(aligner, data / "AFLW2000-full", names, boxes_cache,
                                                           mode, out)
        chosen = match(landmarks, gt["ori"])
        found = chosen >= 0
        idx = np.flatnonzero(found)
        pred = np.stack([landmarks[k][chosen[k], :, :2] for k in idx]).astype(np.float64)
        entry = {"found": int(found.sum()), "detection_rate": float(found.mean()),
                 "ms_per_face": 1000 * seconds / max(faces, 1), "faces_aligned": faces, "nme": {}}
        for key in gt:
            entry["nme"][key] = summarize_bins(per_face_nme(pred, gt[key][idx]), yaw[idx])
        if mode != "none":
            u = np.array([uncertainty[k][chosen[k]] for k in idx])
            err = per_face_nme(pred, gt["ori"][idx])
            good = (err < GOOD_NME).astype(np.float64)
            x = np.log(np.clip(u, 1e-6, None))
            a, b = fit_logistic(x, good)
            conf = 1 / (1 + np.exp(-(a + b * x)))
            folds = np.arange(len(x)) % 2
            cv_conf = np.empty_like(conf)
            for f in (0, 1):
                fa, fb = fit_logistic(x[folds != f], good[folds != f])
                cv_conf[folds == f] = 1 / (1 + np.exp(-(fa + fb * x[folds == f])))
            worst = conf <= np.quantile(conf, 0.1)
            entry["confidence"] = {
                "calibration": {"a": a, "b": b},
                "spearman_confidence_vs_nme": spearman(conf, err),
                "spearman_uncertainty_vs_nme": spearman(u, err),
                "nme_worst_10pct": float(100 * err[worst].mean()),
                "nme_rest": float(100 * err[~worst].mean()),
                "good_share": float(good.mean()),
                "reliability_cross_validated": reliability(cv_conf, good),
                "brier_cross_validated": float(np.mean((cv_conf - good) ** 2)),
                "brier_constant": float(np.mean((good.mean() - good) ** 2)),
            }
            calibration[mode] = (a, b)
        report["modes"][mode] = entry
        n = entry["nme"]["ori"]
        print(f"{mode:5s} found {entry['found']}/{len(names)} ({100 * entry['detection_rate']:.2f}%) "
              f"NME ori {n['bin_0_30']:.3f}/{n['bin_30_60']:.3f}/{n['bin_60_90']:.3f} mean of bins "
              f"{n['mean_of_bins']:.4f} (re {entry['nme']['re']['mean_of_bins']:.4f}); "
              f"{entry['ms_per_face']:.1f} ms/face", flush=True)
        if "confidence" in entry:
            c = entry["confidence"]
            print(f"      confidence: Spearman with NME {c['spearman_confidence_vs_nme']:.3f}; NME worst 10% "
                  f"{c['nme_worst_10pct']:.2f} vs rest {c['nme_rest']:.2f}; Brier (cv) "
                  f"{c['brier_cross_validated']:.4f} vs constant {c['brier_constant']:.4f}; "
                  f"a={c['calibration']['a']:.4f} b={c['calibration']['b']:.4f}", flush=True)
    (out / "photos.json").write_text(json.dumps(report, indent=1))
    (out / "calibration.json").write_text(json.dumps(calibration, indent=1))
    lines = ["| refine | found | detection rate | [0,30] | (30,60] | (60,90] | mean of bins (ori) | mean of bins (re) "
             "| ms/face (alignment) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, e in report["modes"].items():
        n = e["nme"]["ori"]
        lines.append(f"| {mode} | {e['found']}/{len(names)} | {100 * e['detection_rate']:.2f}% | {n['bin_0_30']:.4f} | "
                     f"{n['bin_30_60']:.4f} | {n['bin_60_90']:.4f} | {n['mean_of_bins']:.4f} | "
                     f"{e['nme']['re']['mean_of_bins']:.4f} | {e['ms_per_face']:.1f} |")
    (out / "photos.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'photos.json'}, {out / 'calibration.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
