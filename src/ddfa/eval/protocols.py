"""Pieces shared by the accuracy protocols: yaw bins, NME, landmark frames, crops and data paths.

Definitions (3DDFA's benchmark protocol, used by AFLW2000-3D and AFLW):

* **yaw bins**: by the absolute ground-truth yaw in degrees, ``[0, 30]``, ``(30, 60]`` and
  ``(60, 90+]``; the last bin also holds the few faces whose annotated |yaw| exceeds 90°
  (AFLW2000-3D's ``pose.npy`` has 7), as 3DDFA's analysis does.
* **NME** of one face: the mean point-to-point 2D distance between predicted and ground-truth
  landmarks (image pixels), divided by ``sqrt(w * h)`` of the bounding box of the ground-truth
  points; reported in percent. Points flagged invisible are left out of both.
* **mean of bins**: the plain mean of the three bin means (each bin weighs the same), next to
  the mean over all faces.

Landmark frames of the benchmark (:data:`FRAMES`): 3DDFA v1's benchmark reads the landmarks
in its 1-based crop frame ``(x, 121 - y)`` (``"v1"``, the default, for parity with published
numbers); ddfa's own 0-based frame (``"ddfa"``, = 3DDFA_V2's ``recon_vers``) puts the same
points one crop pixel further up and left. Both are then mapped crop -> image through the
crop's roi box ``(sx, sy, ex, ey)``: ``x·(ex-sx)/120 + sx``, ``y·(ey-sy)/120 + sy``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..assets.store import AssetsLike, resolve_assets
from ..errors import InputError
from ..io.image import read_image
from ..morphable.frames import CROP_SIZE, crop_to_image, model_to_crop, v1_crop_frame
from ..morphable.params import NUM_PARAMS

#: upper edges of the first two |yaw| bins, degrees (bins: [0,30], (30,60], (60,inf))
YAW_BIN_EDGES = (30.0, 60.0)
#: keys of the bins in result dicts and JSON files
YAW_BIN_KEYS = ("bin_0_30", "bin_30_60", "bin_60_90")
#: labels of the bins in tables and plots
YAW_BIN_LABELS = ("[0,30]", "(30,60]", "(60,90+]")

LandmarkFrame = Literal["v1", "ddfa"]
FaceList = Literal["2000", "1998"]

#: landmark frames the benchmarks can score in
FRAMES: dict[str, str] = {
    "v1": "3DDFA v1 1-based crop frame (x = Vx, y = 121 - Vy), as 3DDFA's benchmark.py; default, "
    "reproduces the published protocol",
    "ddfa": "ddfa / 3DDFA_V2 0-based crop frame (x = Vx - 1, y = 120 - Vy), as TDDFA.recon_vers",
}

#: environment variable naming the folder that holds ``aflw2000-3d/`` and ``aflw-subset/``
ENV_DATA = "DDFA_DATA"


def yaw_bins(yaw_degrees) -> np.ndarray:
    """(N,) yaw in degrees -> (N,) int bin index 0, 1, 2 by ``|yaw|`` (see module docstring)."""
    a = np.abs(np.asarray(yaw_degrees, dtype=np.float64))
    return np.where(a <= YAW_BIN_EDGES[0], 0, np.where(a <= YAW_BIN_EDGES[1], 1, 2))


def box_size(points: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``sqrt(w * h)`` of the bounding box of each point set.

    Args:
        points: (N, P, 2) points in pixels.
        visible: optional (N, P) bool; only visible points span the box.

    Returns:
        (N,) float64 pixels.
    """
    pts = np.asarray(points, dtype=np.float64)
    if visible is None:
        lo, hi = pts.min(axis=1), pts.max(axis=1)
    else:
        mask = np.asarray(visible, dtype=bool)[..., None]
        lo = np.where(mask, pts, np.inf).min(axis=1)
        hi = np.where(mask, pts, -np.inf).max(axis=1)
    extent = hi - lo
    return np.sqrt(extent[:, 0] * extent[:, 1])


def nme(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None,
        norm: np.ndarray | None = None) -> np.ndarray:
    """Per-face normalised mean error (a fraction; x100 for percent).

    Args:
        pred: (N, P, 2) predicted points, image pixels.
        gt: (N, P, 2) ground-truth points, image pixels.
        visible: optional (N, P) bool mask of the points to score (default: all).
        norm: optional (N,) normaliser in pixels (default: :func:`box_size` of the visible
            ground truth).

    Returns:
        (N,) float64: mean over the scored points of ``||pred - gt||`` divided by ``norm``.
    """
    pred = np.asarray(pred, dtype=np.float64)[..., :2]
    gt = np.asarray(gt, dtype=np.float64)[..., :2]
    if pred.shape != gt.shape or pred.ndim != 3:
        raise InputError(f"nme: expected two (N, P, 2) arrays of the same shape, got {pred.shape} and {gt.shape}")
    dist = np.linalg.norm(pred - gt, axis=-1)
    if visible is None:
        mean = dist.mean(axis=1)
    else:
        vis = np.asarray(visible, dtype=bool)
        mean = np.where(vis, dist, 0.0).sum(axis=1) / vis.sum(axis=1)
    if norm is None:
        norm = box_size(gt, visible)
    return mean / norm


def summarize_bins(errors: np.ndarray, yaw_degrees: np.ndarray, scale: float = 100.0) -> dict:
    """Bin means, their mean and std, the bin counts and the mean over all faces.

    Args:
        errors: (N,) per-face errors (NME fractions, or degrees with ``scale=1``).
        yaw_degrees: (N,) ground-truth yaw deciding each face's bin.
        scale: factor applied to the figures (100: fractions -> percent).

    Returns:
        ``{"bin_0_30", "bin_30_60", "bin_60_90", "mean_of_bins", "std_of_bins" (population std
        of the three bin means), "bin_counts" [3 ints], "mean_all"}``; an empty bin's mean is NaN.
    """
    errors = np.asarray(errors, dtype=np.float64) * scale
    bins = yaw_bins(yaw_degrees)
    counts = np.bincount(bins, minlength=3)
    means = np.array([errors[bins == b].mean() if counts[b] else np.nan for b in range(3)])
    out: dict[str, Any] = {key: float(m) for key, m in zip(YAW_BIN_KEYS, means)}
    out["mean_of_bins"] = float(means.mean())
    out["std_of_bins"] = float(means.std())
    out["bin_counts"] = [int(c) for c in counts]
    out["mean_all"] = float(errors.mean()) if errors.size else float("nan")
    return out


def check_frame(frame: str) -> None:
    """Raise :class:`InputError` unless ``frame`` is one of :data:`FRAMES`."""
    if frame not in FRAMES:
        raise InputError(f"unknown landmark frame {frame!r}; expected one of {', '.join(FRAMES)}")


def other_frame(frame: LandmarkFrame) -> LandmarkFrame:
    """The benchmark frame that is not ``frame`` (its figures are reported beside)."""
    return "ddfa" if frame == "v1" else "v1"


def landmarks_in_image(model: Any, params: np.ndarray, roi_boxes: np.ndarray,
                       frame: LandmarkFrame = "v1") -> np.ndarray:
    """The 68 landmarks of each face in image pixels, read in a benchmark frame.

    Args:
        model: a :class:`~ddfa.morphable.MorphableModel` (its 68-point basis is used).
        params: (N, 62) de-whitened parameters.
        roi_boxes: (N, 4) roi box ``(sx, sy, ex, ey)`` each crop was cut with, image pixels.
        frame: ``"v1"`` or ``"ddfa"`` (:data:`FRAMES`).

    Returns:
        (N, 68, 3) landmarks (x, y in image pixels, y down; z scaled likewise).
    """
    check_frame(frame)
    crop = model_to_crop(model.landmarks(params))
    if frame == "v1":
        crop = v1_crop_frame(crop)
    return crop_to_image(crop, np.asarray(roi_boxes, dtype=np.float64))


def read_list(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a list file (stripped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image list ({exc.strerror or exc})") from None
    return [line.strip() for line in lines if line.strip()]


def load_crops(folder: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """Read benchmark crops as the reference does (``cv2.imread`` semantics: BGR, no swap).

    Args:
        folder: folder holding the crops.
        names: file names, in ground-truth order.

    Returns:
        (N, 120, 120, 3) uint8 BGR.

    Raises:
        ImageReadError: a crop is missing or unreadable (a benchmark is only valid on its whole
            list, so nothing is skipped).
        InputError: a crop is not 120x120.
    """
    crops = np.empty((len(names), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i, name in enumerate(names):
        image = read_image(Path(folder) / name)
        if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
            raise InputError(f"{Path(folder) / name}: expected a {CROP_SIZE}x{CROP_SIZE} crop, "
                             f"got {image.shape[1]}x{image.shape[0]}")
        crops[i] = image
    return crops


def list_digest(names: Sequence[str]) -> str:
    """sha256 of the image list (names joined by newlines), to pin the evaluated set."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def resolve_data_dir(data: str | os.PathLike | None, subfolder: str, assets: AssetsLike = None) -> Path:
    """Folder of one benchmark's data.

    Order: ``data`` (``--data DIR``, the benchmark's own folder), ``$DDFA_DATA/<subfolder>``,
    then ``<asset root>/../data/<subfolder>`` (the layout of a shared data folder beside the
    assets).

    Raises:
        InputError: none of them exists.
    """
    if data is not None:
        path = Path(data).expanduser()
        if not path.is_dir():
            raise InputError(f"{path}: benchmark data folder not found")
        return path
    tried = []
    env = os.environ.get(ENV_DATA)
    if env:
        tried.append(Path(env).expanduser() / subfolder)
    if assets is not None:
        tried.append(resolve_assets(assets).root.expanduser().resolve().parent / "data" / subfolder)
    for path in tried:
        if path.is_dir():
            return path
    where = ", ".join(str(p) for p in tried) or "nowhere"
    raise InputError(f"{subfolder} data not found (looked in {where}); pass --data DIR or set ${ENV_DATA}")


def asset_digests(relpaths: Iterable[str]) -> dict[str, str | None]:
    """Pinned sha256 of ground-truth assets (the asset store refuses files that differ)."""
    from ..assets.registry import KNOWN_FILES

    return {rel: (KNOWN_FILES[rel].sha256 if rel in KNOWN_FILES else None) for rel in relpaths}


def model_info(regressor: Any) -> dict[str, Any]:
    """What identifies a regressor in a result file (``None``: parameters were given directly)."""
    if regressor is None:
        return {"name": "precomputed-params", "weights_sha256": None, "backend": None, "precision": None,
                "device": None, "whitening": None}
    return {
        "name": str(regressor.name),
        "weights_sha256": regressor.weights_sha256,
        "backend": regressor.backend,
        "precision": getattr(regressor, "precision", "f32"),
        "device": regressor.base_options.device if hasattr(regressor, "base_options") else str(regressor.device),
        "whitening": getattr(regressor.whitening, "name", "custom"),
    }


def regress(regressor: Any, crops: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """(N, 120, 120, 3) uint8 BGR crops -> (N, 62) float32 de-whitened parameters.

    ``batch_size`` 128 matches 3DDFA's benchmark (the batch size moves outputs by ~1e-6 only).
    """
    return np.asarray(regressor(crops, batch_size=batch_size), dtype=np.float32)


def predict_params(regressor: Any, crop_dir: str | os.PathLike, names: Sequence[str], batch_size: int = 128,
                   params: np.ndarray | None = None) -> np.ndarray:
    """(N, 62) de-whitened parameters of the listed crops: ``params`` when given (precomputed, in
    list order), else the regressor's on the crops read from ``crop_dir``.

    Raises:
        InputError: ``params`` is not (N, 62), or ``batch_size`` is below 1.
        ImageReadError: a crop is missing or unreadable.
    """
    if params is None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        return regress(regressor, load_crops(crop_dir, names), batch_size)
    params = np.asarray(params)
    if params.shape != (len(names), NUM_PARAMS):
        raise InputError(f"params: expected shape ({len(names)}, {NUM_PARAMS}), got {params.shape}")
    return params
