"""AFLW: 21-point NME by yaw bin on the shared 4500-face subset.

Data: ``aflw-subset/`` holds 4500 of the 21,080 AFLW test crops of 3DDFA's release (1500 per
|yaw| bin, drawn with a fixed seed) and ``subset.list`` (``row<TAB>name``: the row of each crop in
the 21,080-row ground-truth arrays of ``3DDFA/test.configs``):

* ``AFLW_GT_pts21.npy`` (21080, 2, 21) float32 full-image pixels; an invisible point has
  ``x = -1`` and is left out;
* ``AFLW_GT_crop_roi_box.npy`` (21080, 4) uint16 crop boxes ``(sx, sy, ex, ey)``;
* ``AFLW_GT_crop_yaws.npy`` (21080,) float32 yaw in degrees (bins by its absolute value).

The model predicts the 68 iBUG points; AFLW's 21 points are taken from them with the fixed
map :data:`AFLW21_FROM_68` (each AFLW point is one 68-point landmark, or the centroid of a few
for the three "centre" points). The map was derived from ground truth only, never from model
outputs: AFLW2000-3D has both a 21-point (``AFLW2000-3D.pts21.npy``) and a 68-point annotation
of the same 2000 faces; every AFLW point is the 68-point landmark nearest to it on average
(distance normalised by the 68-point box, over the faces where the point is visible, original
annotation). AFLW's eye centres and mouth centre have no single 68-point counterpart; their
nearest single landmarks are eyelid or lip points (3.3-4.0 % away), whereas the centroid of
the eye contour (36-41, 42-47) and of the inner-lip midpoints (62, 66) are 2.3-2.4 % away, so
those centroids are used (``tests/eval/test_bench_aflw.py`` re-derives and checks the whole map).

Normalisation: 3DDFA normalised AFLW errors by the box of a 68-point ground truth
(``AFLW_GT_pts68.npy``) that is not available here. ddfa uses ``sqrt(w·h)`` of the bounding
box of the *visible ground-truth 21 points* of each face. This box is smaller than the
68-point one, so the figures are larger than, and not comparable with, 3DDFA's AFLW table.
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
    LandmarkFrame,
    asset_digests,
    box_size,
    check_frame,
    landmarks_in_image,
    list_digest,
    model_info,
    nme,
    predict_params,
    resolve_data_dir,
    summarize_bins,
    yaw_bins,
)
from .report import BenchmarkResult

if TYPE_CHECKING:  # pragma: no cover
    from ..morphable.model import MorphableModel
    from ..nets.registry import Regressor

GT_DIR = "3DDFA/test.configs/"
GT_POINTS = GT_DIR + "AFLW_GT_pts21.npy"
GT_ROI_BOXES = GT_DIR + "AFLW_GT_crop_roi_box.npy"
GT_YAWS = GT_DIR + "AFLW_GT_crop_yaws.npy"
DATA_SUBFOLDER = "aflw-subset"
LIST_FILE = "subset.list"
CROP_FOLDER = "AFLW_GT_crop"
NUM_AFLW_ROWS = 21080

#: AFLW's 21 points in their order; "left"/"right" as seen in the image
AFLW21_NAMES = (
    "left brow, outer end", "left brow, centre", "left brow, inner end",
    "right brow, inner end", "right brow, centre", "right brow, outer end",
    "left eye, outer corner", "left eye, centre", "left eye, inner corner",
    "right eye, inner corner", "right eye, centre", "right eye, outer corner",
    "left ear lobe", "nose, left wing", "nose tip", "nose, right wing", "right ear lobe",
    "mouth, left corner", "mouth, centre", "mouth, right corner", "chin",
)

#: for each AFLW point, the 0-based iBUG 68-point landmarks whose centroid predicts it
AFLW21_FROM_68: tuple[tuple[int, ...], ...] = (
    (17,), (19,), (21,), (22,), (24,), (26,),
    (36,), (36, 37, 38, 39, 40, 41), (39,),
    (42,), (42, 43, 44, 45, 46, 47), (45,),
    (2,), (31,), (30,), (35,), (14,),
    (60,), (62, 66), (64,), (8,),
)


def aflw21_matrix() -> np.ndarray:
    """(21, 68) float64 weights: ``pts21 = W @ pts68`` (each row averages its landmarks)."""
    w = np.zeros((21, 68))
    for row, ids in enumerate(AFLW21_FROM_68):
        w[row, list(ids)] = 1.0 / len(ids)
    return w


def to_aflw21(points68: np.ndarray) -> np.ndarray:
    """(N, 68, D) iBUG-68 points -> (N, 21, D) AFLW points (:data:`AFLW21_FROM_68`)."""
    return np.einsum("kp,npd->nkd", aflw21_matrix(), np.asarray(points68, dtype=np.float64))


def landmark_distance_table(pts21: np.ndarray, pts68: np.ndarray) -> np.ndarray:
    """How far each AFLW point is from each 68-point landmark, on average (ground truth only).

    Args:
        pts21: (N, 2, 21) AFLW points, invisible ones with ``x < 0``.
        pts68: (N, 2, 68) 68-point annotation of the same faces, same pixels.

    Returns:
        (21, 68) mean over the faces where the AFLW point is visible of the distance divided by
        ``sqrt(w·h)`` of the face's 68-point box.
    """
    p21 = np.asarray(pts21, dtype=np.float64).transpose(0, 2, 1)
    p68 = np.asarray(pts68, dtype=np.float64)[:, :2].transpose(0, 2, 1)
    visible = p21[..., 0] >= 0
    norm = box_size(p68)
    dist = np.linalg.norm(p21[:, :, None, :] - p68[:, None, :, :], axis=-1) / norm[:, None, None]
    return np.where(visible[..., None], dist, 0.0).sum(axis=0) / visible.sum(axis=0)[:, None]


@dataclass(frozen=True, kw_only=True)
class AflwData:
    """The evaluated AFLW faces, in list order: names, rows into the 21,080-row arrays,
    (N, 4) roi boxes, (N, 21, 2) points, (N, 21) visibility, (N,) yaw degrees."""

    names: list[str]
    rows: np.ndarray
    crop_dir: Path
    roi_boxes: np.ndarray
    points: np.ndarray
    visible: np.ndarray
    yaw: np.ndarray
    list_file: Path


def load_aflw(assets: AssetsLike, data_dir: str | os.PathLike | None = None) -> AflwData:
    """Read ``subset.list`` and the ground truth rows it names."""
    store = resolve_assets(assets)
    folder = resolve_data_dir(data_dir, DATA_SUBFOLDER, store)
    list_file = folder / LIST_FILE
    try:
        lines = [line.split("\t") for line in list_file.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise InputError(f"{list_file}: cannot read the subset list ({exc.strerror or exc})") from None
    try:
        rows = np.array([int(r) for r, _ in lines], dtype=np.int64)
        names = [n.strip() for _, n in lines]
    except ValueError:
        raise InputError(f"{list_file}: expected lines 'row<TAB>file name'") from None
    if rows.size and (rows.min() < 0 or rows.max() >= NUM_AFLW_ROWS):
        raise InputError(f"{list_file}: rows must lie in 0..{NUM_AFLW_ROWS - 1}")
    pts = store.load_npy(GT_POINTS)
    roi = store.load_npy(GT_ROI_BOXES).astype(np.float32)  # uint16 on disk
    yaw = store.load_npy(GT_YAWS).astype(np.float32).reshape(-1)
    if pts.shape != (NUM_AFLW_ROWS, 2, 21) or roi.shape != (NUM_AFLW_ROWS, 4) or yaw.shape != (NUM_AFLW_ROWS,):
        raise InputError(f"AFLW ground truth: unexpected shapes {pts.shape}, {roi.shape}, {yaw.shape}")
    points = pts[rows].transpose(0, 2, 1)
    return AflwData(names=names, rows=rows, crop_dir=folder / CROP_FOLDER, roi_boxes=roi[rows], points=points,
                    visible=points[..., 0] >= 0, yaw=yaw[rows], list_file=list_file)


def aflw_nme(params: np.ndarray, data: AflwData, model: MorphableModel, frame: LandmarkFrame = "v1") -> np.ndarray:
    """(N,) per-face NME (fraction) over the visible AFLW points, normalised by their box."""
    pred21 = to_aflw21(landmarks_in_image(model, params, data.roi_boxes, frame)[..., :2])
    return nme(pred21, data.points, data.visible)


def protocol(data: AflwData, frame: LandmarkFrame, batch_size: int) -> dict[str, Any]:
    return {
        "dataset": "AFLW (3DDFA test crops, 120x120): shared subset of 4500 of 21,080 faces, 1500 per |yaw| "
                   "bin, drawn with a fixed seed",
        "list_file": str(data.list_file),
        "list_sha256": list_digest(data.names),
        "rows_into": [GT_POINTS, GT_ROI_BOXES, GT_YAWS],
        "ground_truth_sha256": asset_digests([GT_POINTS, GT_ROI_BOXES, GT_YAWS]),
        "num_faces": len(data.names),
        "crops": f"{data.crop_dir}/<name>, read with cv2.imread semantics: BGR uint8",
        "preprocessing": "(x - 127.5) / 128, CHW, BGR",
        "batch_size": batch_size,
        "frame": frame,
        "frame_definition": FRAMES[frame],
        "crop_to_image": "x * (ex - sx) / 120 + sx, y * (ey - sy) / 120 + sy with " + GT_ROI_BOXES,
        "points": "AFLW's 21 points predicted from the 68 model landmarks with ddfa.eval.aflw.AFLW21_FROM_68 "
                  "(derived from AFLW2000-3D pts21 vs pts68 ground truth, never from model outputs)",
        "aflw21_from_68": [list(ids) for ids in AFLW21_FROM_68],
        "visibility": "ground-truth points with x = -1 are invisible and left out (prediction and box)",
        "yaw_bins_deg": f"|yaw| <= {YAW_BIN_EDGES[0]:g}, <= {YAW_BIN_EDGES[1]:g}, > {YAW_BIN_EDGES[1]:g} "
                        f"from {GT_YAWS}",
        "normalisation": "per face: mean 2D error over the visible points / sqrt(w * h) of the bounding box of "
                         "the VISIBLE GROUND-TRUTH 21 POINTS. 3DDFA normalised by the box of a 68-point AFLW "
                         "ground truth that is not available, so these figures are not comparable with 3DDFA's "
                         "AFLW table",
        "normalisation_short": "sqrt(area) of the visible GT 21-point box (not 3DDFA's 68-point box)",
        "summary": "mean per yaw bin; mean and population std of the three bin means; mean over all faces; in %",
    }


def run_aflw(regressor: Regressor | None, *, assets: AssetsLike = None, data_dir: str | os.PathLike | None = None,
             frame: LandmarkFrame = "v1", batch_size: int = 128, params: np.ndarray | None = None) -> BenchmarkResult:
    """Run the AFLW 21-point benchmark on the shared subset (see the module docstring).

    Args:
        regressor: a :class:`~ddfa.nets.registry.Regressor` (None with ``params``).
        assets: asset directory or store (ground truth, morphable model).
        data_dir: the ``aflw-subset`` data folder.
        frame: landmark frame, ``"v1"`` (default, 3DDFA's) or ``"ddfa"``.
        batch_size: regressor batch size.
        params: optional precomputed (N, 62) parameters in list order (skips the regressor).
    """
    check_frame(frame)
    store = resolve_assets(assets)
    data = load_aflw(store, data_dir)
    params = predict_params(regressor, data.crop_dir, data.names, batch_size, params)
    errors = aflw_nme(params, data, load_morphable_model(store, "noneck"), frame)
    row = summarize_bins(errors, data.yaw)
    row["split_file"] = Path(GT_YAWS).name
    results = {"nme": {"pts21/yaws": row}}
    curves = {"AFLW 21 points (subset)": {"errors": 100.0 * errors, "bins": yaw_bins(data.yaw), "unit": "%"}}
    extra = {"names": list(data.names), "rows": data.rows.tolist()}
    return BenchmarkResult("aflw", model_info(regressor), protocol(data, frame, batch_size), results, curves, extra)
