"""Fit each detector's box-to-roi mapping on the AFLW2000-3D *development* photos.

3DDFA_V2 turns a FaceBoxes box into the regressor's roi by a fixed rule (side 1.58 x the mean
box side, centre moved down by 0.14 x that side), fitted by its authors to FaceBoxes' boxes.
Other detectors draw other boxes, so each gets its own :class:`ddfa.boxes.RoiMapping`.

**Target.** The roi that 3DDFA_V2's landmark crop policy cuts around the *ground-truth* 68
landmarks (``roi_from_landmarks(gt)``): the crop a perfect first pass would hand to the second
pass, and the kind of crop that gives the lower NME end to end (the landmark crop policy beats
the box crop for every detector). It needs no regressor, so the fit cannot adapt to the
regressor's errors on these photos; the end-to-end NME is measured afterwards as a check
(``--evaluate``).

**Data.** Only the 1700 full-size development photos (``AFLW2000-full``); nothing of the 300
held-out photos, the AFLW2000-3D crops or their benchmark is used.

**Fit.** Per photo the detection nearest the annotated face (box centre within ``sqrt(w·h)``
of the ground-truth landmark centre); least squares on size-normalised residuals
(:func:`ddfa.eval.detection.fit_roi_mapping`): the box-only mapping (scale, shift_x, shift_y)
and, for detectors with 5 points, one that also moves the centre towards the points' centre.

Usage::

    python experiments/fit_roi_mapping.py --assets ../shared/assets [--detectors yunet centerface faceboxes]
        [--evaluate] [--out out/roi_fit]

Prints, per detector: the fitted constants, the roi IoU with the target and the corner error
(percent of the roi side) for 3DDFA_V2's rule and each fit, and with ``--evaluate`` the
end-to-end NME (box crop) of each mapping. Writes ``<out>/roi_fit.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

import ddfa
from ddfa.boxes import FACEBOXES_ROI, RoiMapping, box_iou
from ddfa.eval.detection import fit_roi_mapping, load_full_photos, matched_detections, run_detection
from ddfa.pipeline.crop import roi_from_landmarks


class CachedDetector:
    """A detector whose detections are computed once per image content and whose roi mapping
    can be swapped (to evaluate several mappings on the same detections)."""

    def __init__(self, detector, mapping: RoiMapping):
        self.detector = detector
        self.name = detector.name
        self.options = getattr(detector, "options", None)
        self.roi_mapping = mapping
        self._cache: dict[str, object] = {}

    def detect(self, image):
        key = hashlib.sha1(image.tobytes()).hexdigest()
        if key not in self._cache:
            self._cache[key] = self.detector.detect(image)
        return self._cache[key]


def roi_errors(rois: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Mean IoU with the targets, and mean corner distance in percent of the target side."""
    iou = np.array([box_iou(r[None], t[None])[0, 0] for r, t in zip(rois, targets)])
    side = (targets[:, 2] - targets[:, 0])
    corner = np.linalg.norm((rois - targets).reshape(-1, 2, 2), axis=2).mean(axis=1) / side
    return float(iou.mean()), float(100 * corner.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--data", default=None, help="the aflw2000-3d folder (default: beside the assets)")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "centerface", "faceboxes"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--evaluate", action="store_true", help="also measure the end-to-end NME of each mapping")
    parser.add_argument("--out", default="out/roi_fit")
    args = parser.parse_args()

    store = ddfa.AssetStore(args.assets)
    photos = load_full_photos(args.data, store=store)
    targets = roi_from_landmarks(photos.landmarks.astype(np.float32))
    print(f"{len(photos.names)} development photos; target: roi_from_landmarks(ground-truth 68 landmarks)")
    report = {}
    for name in args.detectors:
        start = time.time()
        detector = ddfa.create_detector(name, base_options=ddfa.BaseOptions(assets=store, threads=args.threads))
        cached = CachedDetector(detector, getattr(detector, "roi_mapping", FACEBOXES_ROI))
        matched, boxes, points = matched_detections(cached, photos)
        b, t = boxes[matched], targets[matched]
        candidates = {"3DDFA_V2 rule (FaceBoxes)": FACEBOXES_ROI, "fit: box": fit_roi_mapping(b, t)}
        has_points = not np.isnan(points[matched]).any()
        if has_points:
            candidates["fit: box + 5 points"] = fit_roi_mapping(b, t, points[matched])
        print(f"\n{name}: {matched.sum()} of {len(matched)} annotated faces matched ({time.time() - start:.0f} s)")
        rows = {}
        for label, mapping in candidates.items():
            iou, corner = roi_errors(mapping(b, points[matched] if has_points else None), t)
            row = {"mapping": mapping.to_dict(), "mean_iou": iou, "corner_error_pct": corner}
            line = f"  {label:<28} {mapping}  IoU {iou:.4f}  corner error {corner:.2f}% of the side"
            if args.evaluate:
                cached.roi_mapping = mapping
                result = run_detection(aligner=ddfa.FaceAligner(detector=cached, assets=store, threads=args.threads),
                                       data_dir=args.data)
                nme_box = result.results["nme"]["box"]
                row["nme_box"] = {k: nme_box[k] for k in ("bin_0_30", "bin_30_60", "bin_60_90", "mean_of_bins")}
                row["nme_landmark_mean_of_bins"] = result.results["nme"]["landmark"]["mean_of_bins"]
                row["pose_mae_box"] = result.results["pose_mae"]["box"]["mean"]
                line += (f"  NME box {nme_box['mean_of_bins']:.3f} (landmark crop "
                         f"{row['nme_landmark_mean_of_bins']:.3f}), pose MAE {row['pose_mae_box']:.2f}")
            print(line, flush=True)
            rows[label] = row
        report[name] = {"matched": int(matched.sum()), "photos": len(matched), "candidates": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "roi_fit.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out / 'roi_fit.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
