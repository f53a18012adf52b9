"""AFLW2000-3D: 68-point NME by yaw bin, 3DDFA's protocol.

Data: the 2000 (or 1998) 120x120 crops of 3DDFA's ``test.data`` release, in the order of
``AFLW2000-3D_crop.list``; ground truth from ``3DDFA/test.configs`` (asset store, checksums
pinned):

* landmarks: ``AFLW2000-3D.pts68.npy`` (``"ori"``, the original 3DMM-fitted annotation) and
  ``AFLW2000-3D-Reannotated.pts68.npy`` (``"re"``), (N, 2|3, 68) full-image pixels;
* crop boxes: ``AFLW2000-3D_crop.roi_box.npy`` (N, 4) ``(sx, sy, ex, ey)``;
* yaw splits: ``AFLW2000-3D.pose.npy`` (``"pose"``, 3DDFA benchmark default, 1312/383/305)
  and ``AFLW2000-3D-new.pose.npy`` (``"new_pose"``, the paper's split, 1306/462/232).

Per face: crop (BGR, as ``cv2.imread``) -> regressor (batch 128) -> de-whitened params -> 68
landmarks in the benchmark frame (:data:`~ddfa.eval.protocols.FRAMES`, default 3DDFA v1's) ->
image pixels through the roi box -> NME over the 68 points normalised by ``sqrt(w·h)`` of the
ground-truth 68-point box. Figures: the mean per |yaw| bin, the mean of the three bin means and
the mean over all faces, for both annotations and both splits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..assets.store import AssetsLike, resolve_assets
from ..errors import InputError
from ..morphable.model import load_morphable_model
from .protocols import (
    FRAMES,
    YAW_BIN_EDGES,
    FaceList,
    LandmarkFrame,
    asset_digests,
    check_frame,
    landmarks_in_image,
    list_digest,
    load_crops,
    model_info,
    nme,
    other_frame,
    predict_params,
    read_list,
    resolve_data_dir,
    summarize_bins,
    yaw_bins,
)
from .refine import plain_and_refined
from .report import BenchmarkResult

if TYPE_CHECKING:  # pragma: no cover
    from ..morphable.model import MorphableModel
    from ..nets.registry import Regressor
    from ..pipeline.refine import RefineMode

GT_DIR = "3DDFA/test.configs/"
ANNOTATIONS = {
    "ori": GT_DIR + "AFLW2000-3D.pts68.npy",
    "re": GT_DIR + "AFLW2000-3D-Reannotated.pts68.npy",
}
SPLITS = {
    "pose": GT_DIR + "AFLW2000-3D.pose.npy",
    "new_pose": GT_DIR + "AFLW2000-3D-new.pose.npy",
}
ROI_BOXES = GT_DIR + "AFLW2000-3D_crop.roi_box.npy"
LISTS = {"2000": "AFLW2000-3D_crop.list", "1998": "AFLW1998-3D_crop.list"}
CROP_FOLDER = "AFLW2000-3D_crop"
DATA_SUBFOLDER = "aflw2000-3d"


@dataclass(frozen=True, kw_only=True)
class Aflw2000Data:
    """Ground truth of the evaluated faces, in list order.

    Attributes:
        names: N crop file names.
        rows: (N,) row of each face in the 2000-row ground-truth arrays.
        crop_dir: folder of the crops.
        roi_boxes: (N, 4) float32 crop boxes, image pixels.
        landmarks: ``{"ori": (N, 68, 2), "re": (N, 68, 2)}`` float32 image pixels.
        yaw: ``{"pose": (N,), "new_pose": (N,)}`` float32 degrees.
        face_list: ``"2000"`` or ``"1998"``.
    """

    names: list[str]
    rows: np.ndarray
    crop_dir: Path
    roi_boxes: np.ndarray
    landmarks: dict[str, np.ndarray]
    yaw: dict[str, np.ndarray]
    face_list: FaceList
    list_file: Path


def load_aflw2000(assets: AssetsLike, data_dir: str | os.PathLike | None = None,
                  face_list: FaceList = "2000") -> Aflw2000Data:
    """Read the face list and the ground truth (asset store ``3DDFA/test.configs``).

    Args:
        assets: asset store, folder or None holding ``3DDFA/test.configs``.
        data_dir: the ``aflw2000-3d`` folder (crops and lists); see
            :func:`~ddfa.eval.protocols.resolve_data_dir` for the default.
        face_list: ``"2000"`` (all faces) or ``"1998"`` (without image02139 and image03862, whose
            ground truth is known to be wrong).
    """
    store = resolve_assets(assets)
    if face_list not in LISTS:
        raise InputError(f"unknown face list {face_list!r}; expected one of {', '.join(LISTS)}")
    folder = resolve_data_dir(data_dir, DATA_SUBFOLDER, store)
    all_names = read_list(folder / LISTS["2000"])
    names = all_names if face_list == "2000" else read_list(folder / LISTS[face_list])
    index = {name: i for i, name in enumerate(all_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise InputError(f"{folder / LISTS[face_list]}: {len(missing)} names not in {LISTS['2000']}, e.g. {missing[0]}")
    rows = np.array([index[n] for n in names], dtype=np.int64)
    roi = store.load_npy(ROI_BOXES).astype(np.float32)
    gt = {key: store.load_npy(rel)[:, :2, :].transpose(0, 2, 1).astype(np.float32) for key, rel in ANNOTATIONS.items()}
    yaw = {key: store.load_npy(rel).astype(np.float32).reshape(-1) for key, rel in SPLITS.items()}
    for what, arr in [("roi boxes", roi), *gt.items(), *yaw.items()]:
        if len(arr) != len(all_names):
            raise InputError(f"AFLW2000-3D {what}: {len(arr)} rows for {len(all_names)} list entries")
    return Aflw2000Data(
        names=names, rows=rows, crop_dir=folder / CROP_FOLDER, roi_boxes=roi[rows],
        landmarks={k: v[rows] for k, v in gt.items()}, yaw={k: v[rows] for k, v in yaw.items()},
        face_list=face_list, list_file=folder / LISTS[face_list],
    )


def aflw2000_nme(params: np.ndarray, data: Aflw2000Data, model: MorphableModel,
                 frame: LandmarkFrame = "v1") -> dict[str, np.ndarray]:
    """Per-face NME (fractions) against each annotation set.

    Args:
        params: (N, 62) de-whitened parameters, in ``data.names`` order.
        data: :class:`Aflw2000Data`.
        model: morphable model (68-point basis).
        frame: ``"v1"`` or ``"ddfa"``.

    Returns:
        ``{"ori": (N,), "re": (N,)}`` float64.
    """
    pred = landmarks_in_image(model, params, data.roi_boxes, frame)[..., :2]
    return {key: nme(pred, gt) for key, gt in data.landmarks.items()}


def summarize(per_face: dict[str, np.ndarray], data: Aflw2000Data) -> dict[str, dict[str, Any]]:
    """``{"ori/pose": summary, ...}`` for both annotations and both splits (figures in %)."""
    out = {}
    for annotation, errors in per_face.items():
        for split, yaw in data.yaw.items():
            row = summarize_bins(errors, yaw)
            row["split_file"] = Path(SPLITS[split]).name
            out[f"{annotation}/{split}"] = row
    return out


def protocol(data: Aflw2000Data, frame: LandmarkFrame, batch_size: int) -> dict[str, Any]:
    return {
        "dataset": "AFLW2000-3D (3DDFA test.data crops, 120x120)",
        "face_list": data.face_list,
        "list_file": str(data.list_file),
        "list_sha256": list_digest(data.names),
        "num_faces": len(data.names),
        "crops": f"{data.crop_dir}/<name>, read with cv2.imread semantics: BGR uint8, no channel swap",
        "preprocessing": "(x - 127.5) / 128, CHW, BGR",
        "batch_size": batch_size,
        "dewhitening": "param = raw * std + mean with the model's own whitening",
        "landmarks": "68 points of the 3DMM (3DDFA keypoints), reconstructed from the 62 params",
        "frame": frame,
        "frame_definition": FRAMES[frame],
        "other_frame_reported": other_frame(frame),
        "crop_to_image": "x * (ex - sx) / 120 + sx, y * (ey - sy) / 120 + sy with roi boxes from "
                         + ROI_BOXES,
        "annotations": dict(ANNOTATIONS),
        "ground_truth_sha256": asset_digests([*ANNOTATIONS.values(), *SPLITS.values(), ROI_BOXES]),
        "yaw_splits": dict(SPLITS),
        "yaw_bins_deg": f"|yaw| <= {YAW_BIN_EDGES[0]:g}, {YAW_BIN_EDGES[0]:g} < |yaw| <= {YAW_BIN_EDGES[1]:g}, "
                        f"|yaw| > {YAW_BIN_EDGES[1]:g} (includes the few annotated |yaw| > 90)",
        "normalisation": "per face: mean 2D point-to-point error over the 68 points / sqrt(w * h) of the "
                         "bounding box of the ground-truth 68 points (of the annotation set scored against)",
        "normalisation_short": "sqrt(area) of the GT 68-point box",
        "summary": "mean per yaw bin; mean and population std of the three bin means; mean over all faces; in %",
    }


def run_aflw2000(
    regressor: Regressor | None,
    *,
    assets: AssetsLike = None,
    data_dir: str | os.PathLike | None = None,
    face_list: FaceList = "2000",
    frame: LandmarkFrame = "v1",
    batch_size: int = 128,
    params: np.ndarray | None = None,
    refine: RefineMode = "none",
) -> BenchmarkResult:
    """Run the AFLW2000-3D benchmark.

    Args:
        regressor: a :class:`~ddfa.nets.registry.Regressor` (``ddfa.create_model``; None with
            ``params``).
        assets: asset directory or store (ground truth, morphable model).
        data_dir: the ``aflw2000-3d`` data folder.
        face_list: ``"2000"`` or ``"1998"``.
        frame: landmark frame, ``"v1"`` (default, 3DDFA's) or ``"ddfa"``; the other frame's
            mean-of-bins figures are reported too (``results["other_frame"]``).
        batch_size: regressor batch size (128, as 3DDFA's benchmark).
        params: optional precomputed (N, 62) parameters (skips reading crops and regressing).
        refine: ``"none"``, ``"flip"`` or ``"full"``: score the test-time refined parameters
            (:mod:`ddfa.eval.refine`); the plain figures and the cost of both in ms per face
            are reported beside them (``results["plain"]``, ``results["refine"]``).
    """
    check_frame(frame)
    store = resolve_assets(assets)
    data = load_aflw2000(store, data_dir, face_list)
    model = load_morphable_model(store, "noneck")
    refined, threads = None, None
    if refine != "none":
        if regressor is None or params is not None:
            raise InputError("refine needs a regressor and no params: refinement regresses the crops itself")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        refined = plain_and_refined(regressor, model, load_crops(data.crop_dir, data.names), refine, batch_size)
        params, threads = refined["refined"], regressor.base_options.threads
    params = predict_params(regressor, data.crop_dir, data.names, batch_size, params)
    per_face = aflw2000_nme(params, data, model, frame)
    other = other_frame(frame)
    other_summary = summarize(aflw2000_nme(params, data, model, other), data)
    results = {
        "nme": summarize(per_face, data),
        "other_frame": {"frame": other,
                        "mean_of_bins": {k: v["mean_of_bins"] for k, v in other_summary.items()},
                        "mean_all": {k: v["mean_all"] for k, v in other_summary.items()}},
    }
    if refined is not None:
        results["plain"] = {"nme": summarize(aflw2000_nme(refined["plain"], data, model, frame), data)}
        results["refine"] = {"mode": refine, "passes": refined["passes"], "ms_per_face": refined["ms_per_face"],
                             "threads": threads}
    curves = {
        f"GT {annotation}, split {Path(SPLITS[split]).name}": {
            "errors": 100.0 * per_face[annotation], "bins": yaw_bins(data.yaw[split]), "unit": "%"}
        for annotation in ANNOTATIONS for split in SPLITS
    }
    extra = {
        "names": list(data.names),
        "faces_with_abs_yaw_over_90": {split: [data.names[i] for i in np.flatnonzero(np.abs(y) > 90)]
                                       for split, y in data.yaw.items()},
    }
    info = protocol(data, frame, batch_size)
    info["refine"] = refine
    return BenchmarkResult("aflw2000-3d", model_info(regressor), info, results, curves, extra)

