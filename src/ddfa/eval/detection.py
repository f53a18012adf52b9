"""End to end on full photos, detector included: detection rate, NME and pose by yaw bin.

Data: the AFLW2000-3D photos at full size (``aflw2000-3d/AFLW2000-full/*.jpg``, the 1700
development photos; 450 x 450, one annotated face each, often more people behind), ground
truth by file name from ``aflw2000-3d/aflw2000_3d_annotations.npz``: ``pts68`` (68 landmarks,
full-image pixels), ``yaw_3ddfa`` (= 3DDFA's ``AFLW2000-3D.pose.npy``, for the |yaw| bins) and
``pose_para`` (pitch, yaw, roll radians, the head-pose ground truth).

Protocol (``../shared/data/README.md``), per photo:

1. the detector finds every face (timed: **ms per photo**, and **boxes per photo**);
2. every found face is aligned from its box (the detector's own box-to-roi rule: **box crop**)
   and again from that pass's landmarks (two-step refinement: **landmark crop**);
3. the face whose 68-landmark centre (box-crop pass; centre of the landmarks' bounding box) is
   nearest the ground-truth centre is the photo's face; the photo counts as **found** when
   that distance is below ``sqrt(w·h)`` of the ground-truth landmark box;
4. on the found photos: NME of the 68 landmarks (ddfa's image frame, as ``Face.landmarks``)
   normalised by ``sqrt(w·h)`` of the ground-truth box, per |yaw| bin and the mean of bins,
   for both crop policies; head-pose MAE (yaw, pitch, roll) of the faces whose ground-truth
   angles lie within ±99°.

The **detection rate** (found / photos, per bin) is reported beside the NME: a missed face is
not an excuse for a better NME.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..assets.store import resolve_assets
from ..errors import InputError
from ..io.image import read_image
from ..pipeline.crop import roi_from_landmarks
from .pose import ANGLE_LIMIT_DEG, load_pose_ground_truth
from .protocols import YAW_BIN_KEYS, YAW_BIN_LABELS, list_digest, nme, resolve_data_dir, summarize_bins, yaw_bins
from .report import BenchmarkResult, _fmt

DATA_SUBFOLDER = "aflw2000-3d"
PHOTO_FOLDER = "AFLW2000-full"
ANNOTATION_FILE = "aflw2000_3d_annotations.npz"


@dataclass
class FullPhotos:
    """The evaluated photos and their ground truth, in name order.

    Attributes:
        folder: folder of the photos.
        names: N file names.
        landmarks: (N, 68, 2) float64 ground-truth landmarks, image pixels.
        yaw: (N,) ground-truth yaw (degrees, ``yaw_3ddfa``) deciding the bins.
        angles: (N, 3) ground-truth ``(yaw, pitch, roll)`` degrees from ``pose_para``.
    """

    folder: Path
    names: list[str]
    landmarks: np.ndarray
    yaw: np.ndarray
    angles: np.ndarray


def load_full_photos(data_dir: str | os.PathLike | None = None, *, store=None, names: Sequence[str] | None = None,
                     subset: int | None = None) -> FullPhotos:
    """The full-size photos present in ``<data_dir>/AFLW2000-full`` and their ground truth.

    Args:
        data_dir: the ``aflw2000-3d`` folder (see :func:`~ddfa.eval.protocols.resolve_data_dir`).
        store: asset store, used only to find the default data folder.
        names: evaluate these file names only (default: every annotated photo in the folder).
        subset: keep ``subset`` photos evenly spaced over the name-sorted list (a quick run).

    Raises:
        InputError: the folder, the annotation file or an annotation is missing.
    """
    folder = resolve_data_dir(data_dir, DATA_SUBFOLDER, store)
    photos = folder / PHOTO_FOLDER
    if not photos.is_dir():
        raise InputError(f"{photos}: folder of full-size photos not found")
    path = folder / ANNOTATION_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            ann_names = [str(n) for n in npz["names"]]
            pts68 = np.asarray(npz["pts68"], dtype=np.float64)
            yaw = np.asarray(npz["yaw_3ddfa"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: cannot read names, pts68 and yaw_3ddfa ({exc})") from None
    index = {n: i for i, n in enumerate(ann_names)}
    if names is None:
        names = sorted(p.name for p in photos.iterdir() if p.name in index)
    else:
        names = list(names)
        missing = [n for n in names if n not in index]
        if missing:
            raise InputError(f"{path}: no annotation for {len(missing)} photos, e.g. {missing[0]}")
    if subset is not None:
        if subset < 1:
            raise InputError(f"subset must be >= 1, got {subset}")
        pick = np.unique(np.linspace(0, len(names) - 1, min(subset, len(names))).round().astype(int))
        names = [names[i] for i in pick]
    if not names:
        raise InputError(f"{photos}: no annotated photos found")
    rows = np.array([index[n] for n in names])
    return FullPhotos(photos, names, pts68[rows, :2].transpose(0, 2, 1), yaw[rows],
                      load_pose_ground_truth(folder, names))


def _centres(points: np.ndarray) -> np.ndarray:
    """(..., P, 2) points -> (..., 2) centres of their bounding boxes."""
    return (points[..., :2].min(axis=-2) + points[..., :2].max(axis=-2)) / 2.0


def evaluate_photos(aligner, photos: FullPhotos, *, progress: Callable[[int, int], None] | None = None,
                    refine: str = "none") -> dict:
    """Run the protocol's steps 1-3 on every photo (see the module docstring).

    Args:
        aligner: a :class:`~ddfa.FaceAligner` with a detector.
        refine: also the landmark-crop pass with this test-time refinement
            (:mod:`ddfa.pipeline.refine`), as the ``refined`` policy, timed per face.

    Returns:
        per-photo arrays: ``found`` (N,) bool, ``distance`` (N,) centre distance / GT size
        (inf when nothing was detected), ``boxes`` (N,) int detections, ``ms`` (N,) detection
        milliseconds, ``ms_total`` (N,) detection + box-crop alignment milliseconds,
        ``box_landmarks`` / ``landmark_landmarks`` (N, 68, 2) of the chosen face (NaN when not
        found), ``box_angles`` / ``landmark_angles`` (N, 3) its yaw, pitch, roll; with
        ``refine``: ``refined_landmarks``, ``refined_angles`` and ``ms_landmark`` /
        ``ms_refined`` (N,) ms of the plain and the refined landmark-crop pass of the chosen face.
    """
    n = len(photos.names)
    gt = photos.landmarks
    gt_centre = _centres(gt)
    gt_size = np.sqrt(np.prod(gt.max(axis=1) - gt.min(axis=1), axis=1))
    out: dict[str, Any] = {
        "found": np.zeros(n, bool), "distance": np.full(n, np.inf), "boxes": np.zeros(n, int),
        "ms": np.zeros(n), "ms_total": np.zeros(n),
        "box_landmarks": np.full((n, 68, 2), np.nan), "landmark_landmarks": np.full((n, 68, 2), np.nan),
        "box_angles": np.full((n, 3), np.nan), "landmark_angles": np.full((n, 3), np.nan),
    }
    if refine != "none":
        out.update(refined_landmarks=np.full((n, 68, 2), np.nan), refined_angles=np.full((n, 3), np.nan),
                   ms_landmark=np.full(n, np.nan), ms_refined=np.full(n, np.nan))
    for i, name in enumerate(photos.names):
        image = read_image(photos.folder / name)
        start = time.perf_counter()
        detections = aligner.detect(image)
        middle = time.perf_counter()
        faces = aligner(image, boxes=detections, crop_policy="box", refine="none") if len(detections) else []
        out["ms"][i] = (middle - start) * 1e3
        out["ms_total"][i] = (time.perf_counter() - start) * 1e3
        out["boxes"][i] = len(detections)
        if faces:
            centres = _centres(np.stack([f.landmarks for f in faces]))
            dist = np.linalg.norm(centres - gt_centre[i], axis=1) / gt_size[i]
            best = int(np.argmin(dist))
            out["distance"][i] = dist[best]
            if dist[best] < 1.0:
                face = faces[best]
                roi = roi_from_landmarks(face.landmarks[None])
                start = time.perf_counter()
                second = aligner.align_rois(image, roi, refine="none")[0]
                out["found"][i] = True
                out["box_landmarks"][i] = face.landmarks[:, :2]
                out["landmark_landmarks"][i] = second.landmarks[:, :2]
                out["box_angles"][i] = face.pose.as_array()
                out["landmark_angles"][i] = second.pose.as_array()
                if refine != "none":
                    middle = time.perf_counter()
                    refined = aligner.align_rois(image, roi, refine=refine)[0]
                    out["ms_landmark"][i] = (middle - start) * 1e3
                    out["ms_refined"][i] = (time.perf_counter() - middle) * 1e3
                    out["refined_landmarks"][i] = refined.landmarks[:, :2]
                    out["refined_angles"][i] = refined.pose.as_array()
        if progress is not None:
            progress(i + 1, n)
    return out


def summarize(photos: FullPhotos, per_photo: dict) -> tuple[dict, dict]:
    """Figures of the protocol's step 4 from :func:`evaluate_photos`' arrays.

    Returns:
        ``(results, curves)``: the summary (see :func:`run_detection`) and the per-face NME
        curves of both crop policies for CED plots.
    """
    found = per_photo["found"]
    bins = yaw_bins(photos.yaw)
    rate: dict[str, Any] = {key: float(found[bins == b].mean()) if np.any(bins == b) else float("nan")
                            for b, key in enumerate(YAW_BIN_KEYS)}
    rate["all"] = float(found.mean())
    rate["found"] = int(found.sum())
    rate["photos"] = int(len(found))
    rate["bin_counts"] = [int(np.sum(bins == b)) for b in range(3)]
    results: dict[str, Any] = {"detection_rate": rate, "nme": {}, "pose_mae": {}}
    curves = {}
    per_photo["nme_pct"], per_photo["pose_error"] = {}, {}
    gt = photos.landmarks[found]
    keep_pose = found & np.all(np.abs(photos.angles) <= ANGLE_LIMIT_DEG, axis=1)
    labels = {"box": "box crop", "landmark": "landmark crop", "refined": "landmark crop, refined"}
    for policy in (p for p in ("box", "landmark", "refined") if f"{p}_landmarks" in per_photo):
        label = labels[policy]
        errors = nme(per_photo[f"{policy}_landmarks"][found], gt)
        results["nme"][policy] = summarize_bins(errors, photos.yaw[found])
        full = np.full(len(found), np.nan)
        full[found] = errors * 100.0
        per_photo["nme_pct"][policy] = full
        pose = np.full(len(found), np.nan)
        pose[keep_pose] = np.abs(per_photo[f"{policy}_angles"][keep_pose] - photos.angles[keep_pose]).mean(axis=1)
        per_photo["pose_error"][policy] = pose
        curves[f"NME, {label} (found faces)"] = {"errors": errors * 100.0, "bins": bins[found], "unit": "%"}
        abs_err = np.abs(per_photo[f"{policy}_angles"][keep_pose] - photos.angles[keep_pose])
        mae = {k: float(abs_err[:, j].mean()) if len(abs_err) else float("nan")
               for j, k in enumerate(("yaw", "pitch", "roll"))}
        mae["mean"] = float(np.mean(list(mae.values())))
        mae["faces"] = int(keep_pose.sum())
        results["pose_mae"][policy] = mae
    ms, total = per_photo["ms"], per_photo["ms_total"]
    results["boxes_per_photo"] = float(np.mean(per_photo["boxes"]))
    results["ms_per_photo"] = {"detect_median": float(np.median(ms)), "detect_mean": float(np.mean(ms)),
                               "detect_align_median": float(np.median(total)),
                               "detect_align_mean": float(np.mean(total))}
    if "ms_refined" in per_photo:  # per face: the landmark-crop pass, plain and refined
        results["ms_per_face"] = {"landmark_median": float(np.nanmedian(per_photo["ms_landmark"])),
                                  "refined_median": float(np.nanmedian(per_photo["ms_refined"]))}
    return results, curves


def run_detection(detector: Any = None, *, model: str = "mb05", assets=None, data_dir=None, threads: int | None = None,
                  detector_options: Any = None, names: Sequence[str] | None = None, subset: int | None = None,
                  aligner=None, progress: Callable[[int, int], None] | None = None,
                  refine: str = "none") -> BenchmarkResult:
    """The end-to-end detection benchmark on the full-size AFLW2000-3D development photos.

    Args:
        detector: detector plug-in name (default: ddfa's default detector) or object.
        model: regressor (name or checkpoint).
        assets: asset folder or store.
        data_dir: the ``aflw2000-3d`` folder (default: beside the assets, or ``$DDFA_DATA``).
        threads: CPU threads of the inference engines (None: all cores).
        detector_options: the plug-in's options (dataclass or mapping), e.g. ``{"det_size": 960}``.
        names, subset: evaluate only these photos / an evenly spaced subset of them.
        aligner: a ready :class:`~ddfa.FaceAligner` (then ``detector``, ``model``,
            ``threads`` and ``detector_options`` are ignored).
        progress: called with ``(done, total)`` after each photo.
        refine: ``"flip"`` or ``"full"``: also score the landmark-crop pass with that test-time
            refinement (policy ``refined``, beside the plain ones, with its ms per face).

    Returns:
        A :class:`~ddfa.eval.report.BenchmarkResult` (``benchmark="detection"``) whose results
        hold ``detection_rate`` (per bin, ``all``), ``nme`` (``box`` / ``landmark``: per bin,
        mean of bins, counts), ``pose_mae`` (``box`` / ``landmark``: yaw, pitch, roll, mean),
        ``boxes_per_photo`` and ``ms_per_photo``.
    """
    from ..detect.base import DEFAULT_DETECTOR
    from ..pipeline import FaceAligner

    store = resolve_assets(assets if aligner is None else aligner.assets)
    if aligner is None:
        aligner = FaceAligner(model=model, detector=detector or DEFAULT_DETECTOR, assets=store, threads=threads,
                              detector_options=detector_options)
    if aligner.detector is None:
        raise InputError("the detection benchmark needs a detector")
    photos = load_full_photos(data_dir, store=store, names=names, subset=subset)
    per_photo = evaluate_photos(aligner, photos, progress=progress, refine=refine)
    results, curves = summarize(photos, per_photo)
    det = aligner.detector
    det_name = getattr(det, "name", type(det).__name__)
    options = getattr(det, "options", None)
    option_dict = dict(vars(options)) if options is not None and hasattr(options, "__dict__") else {}
    mapping = aligner.roi_mapping
    info = {
        "name": det_name,
        "detector": det_name,
        "detector_options": option_dict,
        "roi_mapping": mapping.to_dict(),
        "regressor": str(aligner.regressor.name),
        "weights_sha256": aligner.regressor.weights_sha256,
        "backend": aligner.regressor.backend,
        "threads": aligner.base_options.threads,
        "refine": refine,
    }
    protocol = {
        "dataset": f"AFLW2000-3D full-size photos ({photos.folder})",
        "num_photos": len(photos.names),
        "list_sha256": list_digest(photos.names),
        "ground_truth": f"{photos.folder.parent / ANNOTATION_FILE}: pts68 (68 landmarks, image pixels), yaw_3ddfa "
                        "(|yaw| bins), pose_para (head pose), by file name",
        "matching": "the detected face whose 68-landmark centre (box-crop pass, centre of the landmarks' bounding "
                    "box) is nearest the ground-truth centre; found when that distance < sqrt(w*h) of the "
                    "ground-truth landmark box",
        "crop_policies": "box: the detector's box-to-roi rule (roi_mapping); landmark: a second pass on the roi of "
                         "the box pass's landmarks (3DDFA_V2's two-step refinement)",
        "nme": "mean 2D point-to-point distance over the 68 points (ddfa's image frame, as Face.landmarks) / "
               "sqrt(w*h) of the ground-truth landmark box, percent, on the found photos",
        "yaw_bins": "|yaw_3ddfa|: [0,30], (30,60], (60,90+]",
        "pose": f"|predicted - ground truth| per angle (degrees, AFLW2000-3D convention) on the found photos whose "
                f"ground-truth angles lie within ±{ANGLE_LIMIT_DEG:g} deg",
        "timing": "detection: FaceAligner.detect on the decoded photo; detect+align: plus the box-crop alignment "
                  "of every detected face; wall-clock ms, one photo at a time",
    }
    def listed(values):
        return [float(f"{v:.5g}") if np.isfinite(v) else None for v in values]

    extra = {"names": photos.names, "found": per_photo["found"].astype(int).tolist(),
             "distance": listed(per_photo["distance"]), "boxes": per_photo["boxes"].astype(int).tolist(),
             "yaw": listed(photos.yaw),
             "nme_pct": {k: listed(v) for k, v in per_photo["nme_pct"].items()},
             "pose_error_deg": {k: listed(v) for k, v in per_photo["pose_error"].items()}}
    return BenchmarkResult("detection", info, protocol, results, curves, extra)


def format_detection_table(results: Sequence[BenchmarkResult], digits: int = 2) -> str:
    """One table, one row per detector: detection rate, NME (box / landmark crop) by bin and
    mean of bins, pose MAE, boxes per photo and ms per photo."""
    if not results:
        return ""
    first = results[0]
    rate_bins = "".join(f"{'det ' + b:>14}" for b in YAW_BIN_LABELS)
    lines = [
        f"detection benchmark: {first.protocol.get('num_photos')} AFLW2000-3D full photos, regressor "
        f"{first.model.get('regressor')}; NME (%) on found faces, ddfa image frame; pose MAE (deg) on found faces",
        f"{'detector':<22}{'det all':>8}{rate_bins}"
        + "".join(f"{'box ' + b:>14}" for b in YAW_BIN_LABELS) + f"{'box mean':>10}"
        + "".join(f"{'lmk ' + b:>14}" for b in YAW_BIN_LABELS) + f"{'lmk mean':>10}"
        + f"{'pose box':>10}{'pose lmk':>10}{'boxes':>7}{'ms det':>8}{'ms e2e':>8}"
        + (f"{'refine':>8}{'ref mean':>10}{'pose ref':>10}{'ms/face lmk':>13}{'ms/face ref':>13}"
           if any("refined" in r.results["nme"] for r in results) else ""),
    ]
    for result in results:
        r = result.results
        rate = r["detection_rate"]
        row = f"{_label(result):<22}{_fmt(rate['all'], 4):>8}"
        row += "".join(f"{_fmt(rate[k], 4):>14}" for k in YAW_BIN_KEYS)
        for policy in ("box", "landmark"):
            figures = r["nme"][policy]
            row += "".join(f"{_fmt(figures[k], digits):>14}" for k in YAW_BIN_KEYS)
            row += f"{_fmt(figures['mean_of_bins'], digits):>10}"
        row += f"{_fmt(r['pose_mae']['box']['mean'], digits):>10}{_fmt(r['pose_mae']['landmark']['mean'], digits):>10}"
        row += f"{r['boxes_per_photo']:>7.2f}{r['ms_per_photo']['detect_median']:>8.1f}"
        row += f"{r['ms_per_photo']['detect_align_median']:>8.1f}"
        if "refined" in r["nme"]:
            row += f"{result.model.get('refine', ''):>8}{_fmt(r['nme']['refined']['mean_of_bins'], digits):>10}"
            row += f"{_fmt(r['pose_mae']['refined']['mean'], digits):>10}"
            row += f"{r['ms_per_face']['landmark_median']:>13.1f}{r['ms_per_face']['refined_median']:>13.1f}"
        lines.append(row)
    counts = first.results["detection_rate"]["bin_counts"]
    lines.append(f"photos per |yaw| bin: {'/'.join(str(c) for c in counts)}; ms: median per photo")
    return "\n".join(lines)


def common_figures(results: Sequence[BenchmarkResult]) -> dict[str, dict]:
    """NME (mean of bins) and pose MAE of each run on the photos *every* run found (same names).

    Detectors that find more hard faces are penalised by them in the main table; this compares
    them on equal ground. Returns ``{label: {"photos", "nme_box", "nme_landmark", "pose_box",
    "pose_landmark"}}`` (empty when the runs did not evaluate the same photos).
    """
    if len(results) < 2 or any("nme_pct" not in r.extra for r in results):
        return {}
    names = results[0].extra["names"]
    if any(r.extra["names"] != names for r in results[1:]):
        return {}
    common = np.all([np.asarray(r.extra["found"], bool) for r in results], axis=0)
    bins = yaw_bins(np.asarray(results[0].extra["yaw"], np.float64))[common]
    out = {}
    for r in results:
        row: dict[str, Any] = {"photos": int(common.sum())}
        for policy in ("box", "landmark"):
            errors = np.asarray([np.nan if v is None else v for v in r.extra["nme_pct"][policy]], np.float64)[common]
            row[f"nme_{policy}"] = float(np.mean([errors[bins == b].mean() for b in range(3) if np.any(bins == b)]))
            pose = np.asarray([np.nan if v is None else v for v in r.extra["pose_error_deg"][policy]], np.float64)
            row[f"pose_{policy}"] = float(np.nanmean(pose[common]))
        out[_label(r)] = row
    return out


def format_common_table(results: Sequence[BenchmarkResult], digits: int = 2) -> str:
    """:func:`common_figures` as a few lines ('' when not applicable)."""
    figures = common_figures(results)
    if not figures:
        return ""
    count = next(iter(figures.values()))["photos"]
    lines = [f"on the {count} photos every detector found: NME mean of bins (box / landmark crop), "
             "pose MAE (box / landmark crop)"]
    for label, row in figures.items():
        lines.append(f"  {label:<22}{_fmt(row['nme_box'], digits):>8} / {_fmt(row['nme_landmark'], digits):<8}"
                     f"{_fmt(row['pose_box'], digits):>8} / {_fmt(row['pose_landmark'], digits)}")
    return "\n".join(lines)


def format_markdown_table(results: Sequence[BenchmarkResult]) -> str:
    """The same figures as a Markdown table (for the README)."""
    head = ("| detector | detected (all / >60°) | NME box crop: [0,30] / (30,60] / (60,90] / **mean** "
            "| NME landmark crop: bins / **mean** | pose MAE box / lmk (°) | boxes / photo | ms / photo (det / e2e) |")
    refined = any("refined" in r.results["nme"] for r in results)
    if refined:
        head += " NME landmark crop, refined: bins / **mean** | ms / face (plain / refined) |"
    lines = [head, "| --- " * head.count(" | ") + "| --- |"]
    for result in results:
        r = result.results
        rate = r["detection_rate"]
        cells = [
            _label(result),
            f"{rate['all']:.4f} / {rate['bin_60_90']:.4f}",
            " / ".join(_fmt(r["nme"]["box"][k], 2) for k in YAW_BIN_KEYS)
            + f" / **{r['nme']['box']['mean_of_bins']:.2f}**",
            " / ".join(_fmt(r["nme"]["landmark"][k], 2) for k in YAW_BIN_KEYS)
            + f" / **{r['nme']['landmark']['mean_of_bins']:.2f}**",
            f"{r['pose_mae']['box']['mean']:.2f} / {r['pose_mae']['landmark']['mean']:.2f}",
            f"{r['boxes_per_photo']:.2f}",
            f"{r['ms_per_photo']['detect_median']:.1f} / {r['ms_per_photo']['detect_align_median']:.1f}",
        ]
        if refined and "refined" in r["nme"]:
            bins = " / ".join(_fmt(r["nme"]["refined"][k], 2) for k in YAW_BIN_KEYS)
            cells += [f"{result.model.get('refine')}: {bins} / **{r['nme']['refined']['mean_of_bins']:.2f}**",
                      f"{r['ms_per_face']['landmark_median']:.1f} / {r['ms_per_face']['refined_median']:.1f}"]
        elif refined:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _label(result: BenchmarkResult) -> str:
    name = str(result.model.get("name", "detector"))
    size = (result.model.get("detector_options") or {}).get("det_size")
    return f"{name} ({size})" if size is not None else name



# ---------------------------------------------------------------------- box -> roi fitting
def matched_detections(detector, photos: FullPhotos) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each photo's detection of the annotated face, for fitting a box-to-roi mapping.

    The matched detection is the one whose box centre is nearest the ground-truth landmark
    centre, if nearer than ``sqrt(w·h)`` of the ground-truth box (no regressor involved).

    Returns:
        ``(matched, boxes, keypoints)``: (N,) bool, (N, 4) float32 boxes and (N, 5, 2) float32
        points (NaN where unmatched or where the detector gives no points).
    """
    n = len(photos.names)
    gt_centre = _centres(photos.landmarks)
    gt_size = np.sqrt(np.prod(photos.landmarks.max(axis=1) - photos.landmarks.min(axis=1), axis=1))
    matched = np.zeros(n, bool)
    boxes = np.full((n, 4), np.nan, np.float32)
    points = np.full((n, 5, 2), np.nan, np.float32)
    for i, name in enumerate(photos.names):
        found = detector.detect(read_image(photos.folder / name))
        if not len(found):
            continue
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        dist = np.linalg.norm(centres - gt_centre[i], axis=1)
        best = int(np.argmin(dist))
        if dist[best] < gt_size[i]:
            matched[i] = True
            boxes[i] = found.boxes[best]
            if found.keypoints is not None:
                points[i] = found.keypoints[best]
    return matched, boxes, points


def fit_roi_mapping(boxes: np.ndarray, target_rois: np.ndarray, keypoints: np.ndarray | None = None):
    """Least-squares box-to-roi mapping (:class:`~ddfa.boxes.RoiMapping`) onto target rois.

    With ``m`` the mean side of each box, the residuals are normalised by ``m`` so that every
    face weighs the same whatever its size: ``scale`` is the mean of ``target side / m``;
    ``shift_x``, ``shift_y`` (and ``keypoint_weight`` when ``keypoints`` are given) solve
    ``(target centre - box centre) / m = k (points centre - box centre) / m + shift`` in the
    least-squares sense (one ``k`` for both axes). The least-squares fit of a square's four
    corners decouples into exactly these centre and side fits.

    Args:
        boxes: (N, 4) detection boxes; target_rois: (N, 4) square rois ``(sx, sy, ex, ey)``.
        keypoints: optional (N, 5, 2) points of the same detections.

    Returns:
        The fitted :class:`~ddfa.boxes.RoiMapping` (``truncate=False``).
    """
    from ..boxes import RoiMapping

    b = np.asarray(boxes, np.float64)
    t = np.asarray(target_rois, np.float64)
    m = ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2
    box_c = (b[:, :2] + b[:, 2:]) / 2
    tgt_c = (t[:, :2] + t[:, 2:]) / 2
    side = ((t[:, 2] - t[:, 0]) + (t[:, 3] - t[:, 1])) / 2
    scale = float(np.mean(side / m))
    y = ((tgt_c - box_c) / m[:, None])  # (N, 2)
    if keypoints is None:
        shift = y.mean(axis=0)
        return RoiMapping(round(scale, 4), round(float(shift[0]), 4), round(float(shift[1]), 4))
    pts = np.asarray(keypoints, np.float64)
    kp_c = (pts.min(axis=1) + pts.max(axis=1)) / 2
    x = (kp_c - box_c) / m[:, None]
    n = len(b)
    design = np.zeros((2 * n, 3))
    design[:n, 0], design[n:, 0] = x[:, 0], x[:, 1]
    design[:n, 1] = 1.0
    design[n:, 2] = 1.0
    coef, *_ = np.linalg.lstsq(design, np.concatenate([y[:, 0], y[:, 1]]), rcond=None)
    k, dx, dy = (float(c) for c in coef)
    return RoiMapping(round(scale, 4), round(dx, 4), round(dy, 4), keypoint_weight=round(k, 4))


# ---------------------------------------------------------------------- scale test images
@dataclass
class FaceCanvas:
    """A synthetic photo of faces pasted from the development photos, with their ground truth.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        centres: (K, 2) ground-truth landmark-box centres of the pasted faces, pixels.
        sizes: (K,) their ``sqrt(w·h)`` landmark-box sizes, pixels (the face size asked for).
        names: (K,) source photo of each face.
    """

    image: np.ndarray
    centres: np.ndarray
    sizes: np.ndarray
    names: list[str]


def paste_faces(shape: tuple[int, int], photos: FullPhotos, cells: Sequence[tuple[int, int, int, float]], *,
                seed: int = 0) -> FaceCanvas:
    """Paste faces of the development photos onto a blurred-noise canvas.

    Args:
        shape: ``(height, width)`` of the canvas.
        photos: source photos (face ``k`` of ``cells`` comes from photo ``k % len(photos)``).
        cells: per face ``(x0, y0, side, face_size)``: a square patch of ``side`` pixels at
            ``(x0, y0)`` holding the face scaled so that its ground-truth landmark box measures
            ``face_size`` (``sqrt(w·h)``), centred; the patch shows the photo around the face
            (mirrored beyond the photo's border).
        seed: background noise seed.

    Returns:
        A :class:`FaceCanvas`.
    """
    import cv2

    height, width = shape
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 215, (max(1, height // 16), max(1, width // 16), 3)).astype(np.uint8)
    image = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_LINEAR)
    centres, sizes, names = [], [], []
    loaded: dict[int, tuple[np.ndarray, int]] = {}
    for k, (x0, y0, side, face_size) in enumerate(cells):
        i = k % len(photos.names)
        if i not in loaded:
            photo = read_image(photos.folder / photos.names[i])
            pad = max(photo.shape[:2])
            loaded[i] = (cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REFLECT_101), pad)
        padded, pad = loaded[i]
        gt = photos.landmarks[i]
        lo, hi = gt.min(axis=0), gt.max(axis=0)
        size = float(np.sqrt(np.prod(hi - lo)))
        centre = (lo + hi) / 2 + pad
        src = max(1, int(round(side * size / face_size)))  # side of the source square, padded-photo pixels
        sx, sy = (int(round(c - src / 2)) for c in centre)
        sx = min(max(sx, 0), padded.shape[1] - src)
        sy = min(max(sy, 0), padded.shape[0] - src)
        region = padded[sy:sy + src, sx:sx + src]
        factor = side / src
        patch = cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        y1, x1 = min(y0 + side, height), min(x0 + side, width)
        image[y0:y1, x0:x1] = patch[: y1 - y0, : x1 - x0]
        # the face's centre through the same resize (pixel centres: (x + 0.5) * factor - 0.5)
        centres.append((x0 + (centre[0] - sx + 0.5) * factor - 0.5, y0 + (centre[1] - sy + 0.5) * factor - 0.5))
        sizes.append(size * factor)
        names.append(photos.names[i])
    return FaceCanvas(image, np.array(centres, np.float64), np.array(sizes, np.float64), names)


def faces_found(canvas: FaceCanvas, boxes: np.ndarray) -> np.ndarray:
    """Which pasted faces a detector found: (K,) bool.

    A face is found by a box whose centre lies within half the face's size of the face's
    centre and whose mean side is between 0.5 and 3 times the face's size; each box finds at
    most one face (nearest first).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    found = np.zeros(len(canvas.centres), bool)
    if not len(boxes):
        return found
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2
    dist = np.linalg.norm(canvas.centres[:, None] - centres[None], axis=2) / canvas.sizes[:, None]
    ratio = sides[None] / canvas.sizes[:, None]
    ok = (dist < 0.5) & (ratio > 0.5) & (ratio < 3.0)
    used = np.zeros(len(boxes), bool)
    for k in np.argsort(np.where(ok, dist, np.inf).min(axis=1)):
        candidates = np.flatnonzero(ok[k] & ~used)
        if candidates.size:
            used[candidates[np.argmin(dist[k, candidates])]] = True
            found[k] = True
    return found
