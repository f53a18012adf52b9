"""Training data: 3DDFA's format, ddfa's own format, augmentation and the data loader.

Both formats hold 120x120 face crops with the 62 3DMM parameters of the face in each crop, in
the crop frame of :mod:`ddfa.morphable.frames` (the model's projection ``x = Vx - 1``,
``y = 120 - Vy`` lands on the face in 0-based crop pixels).

**3DDFA's format** (``train_aug_120x120``): a text file listing image paths, one a line, relative
to a root folder, and a pickle of an (N, 62) float32 array of parameters **whitened with
3DDFA's v1 whitening** (``param_all_norm.pkl``), row i for line i. The pickle is read with the
numpy-only unpickler.

**ddfa's format** (written by ``ddfa synth`` and :func:`write_ddfa_dataset`)::

    DIR/
      images/            120x120 BGR crops (PNG or JPEG), any file names
      params.npz         params (N, 62) float32 DE-whitened parameters (whitening-independent)
                         names  (N,) str, image paths relative to DIR/images
                         meta   () str, JSON: {"format": "ddfa-crops", "version": 1,
                                 "size": 120, "frame": "ddfa-crop", ...}
                         optional: pose (N, 3) float32 (yaw, pitch, roll) degrees, AFLW
                         convention; split (N,) str

A dataset yields ``(image, params)``: image (3, 120, 120) float32, BGR, ``(pixel - 127.5) / 128``
(the regressor's input), params (62,) float32 de-whitened; the trainer whitens them with the
model's whitening, so either format trains a model of either whitening.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..assets.safe_pickle import load_numpy_pickle
from ..assets.store import AssetsLike
from ..errors import InputError
from ..io.image import read_image
from ..morphable.frames import CROP_SIZE
from ..morphable.params import NUM_PARAMS, Whitening, coefficients, join_params, pose_matrix

DDFA_FORMAT = "ddfa-crops"
DDFA_FORMAT_VERSION = 1
IMAGE_DIR = "images"
PARAMS_FILE = "params.npz"
#: preload the crops into memory when they take less than this many bytes
PRELOAD_LIMIT = 2 << 30

#: a dataset entry of a config: a ddfa folder, a dict (see :func:`read_source`) or a list of them
DatasetSpec = str | os.PathLike | Mapping[str, Any] | Sequence[Any]


# ---------------------------------------------------------------------- sources
@dataclass(frozen=True, kw_only=True)
class CropSource:
    """Where crops and their parameters are: image paths + (N, 62) de-whitened parameters."""

    paths: list[Path]
    params: np.ndarray
    description: str
    pose: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> CropSource:
        index = np.asarray(index)
        return CropSource(paths=[self.paths[i] for i in index], params=self.params[index],
                          description=self.description, pose=None if self.pose is None else self.pose[index])


def read_ddfa_dataset(folder: str | os.PathLike) -> CropSource:
    """Read a folder in ddfa's format (see the module docstring)."""
    folder = Path(folder)
    npz_path = folder / PARAMS_FILE
    if not npz_path.is_file():
        raise InputError(f"{folder}: not a ddfa dataset (no {PARAMS_FILE}; expected images/ + {PARAMS_FILE} "
                         "as `ddfa synth` writes)")
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            params = np.asarray(data["params"], dtype=np.float32)
            names = [str(n) for n in data["names"]]
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
            pose = np.asarray(data["pose"], dtype=np.float32) if "pose" in data.files else None
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{npz_path}: unreadable ddfa dataset file ({exc})") from None
    if meta.get("format", DDFA_FORMAT) != DDFA_FORMAT:
        raise InputError(f"{npz_path}: format {meta.get('format')!r} is not {DDFA_FORMAT!r}")
    if meta.get("size", CROP_SIZE) != CROP_SIZE:
        raise InputError(f"{npz_path}: crops of size {meta.get('size')} are not supported (120 only)")
    _check_params(params, len(names), npz_path)
    paths = [folder / IMAGE_DIR / n for n in names]
    return CropSource(paths=paths, params=params, description=f"ddfa:{folder}", pose=pose)


def read_3ddfa_dataset(root: str | os.PathLike, filelist: str | os.PathLike, param_pickle: str | os.PathLike,
                       whitening: Whitening) -> CropSource:
    """Read 3DDFA's training format.

    Args:
        root: folder the listed image paths are relative to.
        filelist: text file, one image path per line.
        param_pickle: pickle of the (N, 62) whitened parameters (3DDFA's ``param_all_norm.pkl``).
        whitening: the whitening of the pickle (3DDFA's ``"v1"``).
    """
    root, filelist = Path(root), Path(filelist)
    try:
        names = [line.strip() for line in filelist.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise InputError(f"{filelist}: cannot read the image list ({exc.strerror})") from None
    raw = np.asarray(load_numpy_pickle(Path(param_pickle)), dtype=np.float32)
    _check_params(raw, len(names), Path(param_pickle))
    params = whitening.dewhiten(raw).astype(np.float32)
    return CropSource(paths=[root / n for n in names], params=params, description=f"3ddfa:{filelist}")


def _check_params(params: np.ndarray, count: int, source: Path) -> None:
    if params.ndim != 2 or params.shape[1] != NUM_PARAMS:
        raise InputError(f"{source}: expected (N, 62) parameters, found shape {params.shape}")
    if len(params) != count:
        raise InputError(f"{source}: {len(params)} parameter rows for {count} images")
    if not np.all(np.isfinite(params)):
        raise InputError(f"{source}: parameters contain NaN or infinity")


def read_source(spec: DatasetSpec, whitenings: Mapping[str, Whitening] | None = None,
                store: AssetsLike = None) -> CropSource:
    """A dataset from a config entry.

    ``spec`` is a folder in ddfa's format (a string), or a dict ``{"format": "3ddfa", "root":
    DIR, "list": FILE, "params": PKL, "whitening": "v1"}``, or ``{"format": "ddfa", "path": DIR}``.
    Several specs in a list are concatenated. ``whitenings`` are already loaded whitenings by
    name; others are loaded from ``store``.

    Raises:
        InputError: a malformed entry, or a dataset that cannot be read.
    """
    if isinstance(spec, (list, tuple)):
        parts = [read_source(s, whitenings, store) for s in spec]
        if not parts:
            raise InputError("empty list of datasets")
        return CropSource(
            paths=[p for part in parts for p in part.paths],
            params=np.concatenate([part.params for part in parts]),
            description="+".join(part.description for part in parts),
        )
    if isinstance(spec, (str, os.PathLike)):
        return read_ddfa_dataset(spec)
    if isinstance(spec, Mapping):
        fmt = spec.get("format", "ddfa")
        if fmt not in ("ddfa", "3ddfa"):
            raise InputError(f"unknown dataset format {fmt!r}; expected 'ddfa' or '3ddfa'")
        missing = [k for k in (("path",) if fmt == "ddfa" else ("root", "list", "params")) if k not in spec]
        if missing:
            raise InputError(f"{fmt} dataset entry {spec} lacks {', '.join(missing)}")
        if fmt == "ddfa":
            return read_ddfa_dataset(spec["path"])
        name = spec.get("whitening", "v1")
        if whitenings and name in whitenings:
            white = whitenings[name]
        else:
            from ..assets.store import resolve_assets
            from ..morphable.params import load_whitening

            white = load_whitening(resolve_assets(store), name)
        return read_3ddfa_dataset(spec["root"], spec["list"], spec["params"], white)
    raise InputError(f"cannot read a dataset from {spec!r}")


# ---------------------------------------------------------------------- augmentation
@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Random augmentations that keep image and parameters consistent.

    Photometric (parameters unchanged): ``brightness``, ``contrast``, ``saturation`` are the
    half-widths of uniform factors around 1 (0 disables); ``gray`` the probability of a gray
    image; ``noise`` the std of additive Gaussian pixel noise (grey levels).

    Geometric crop jitter (the pose parameters follow, see :func:`jitter_params`): ``shift``
    the half-width of the uniform shift as a fraction of the crop side, ``scale`` of the zoom
    factor around 1, ``rotate`` of the in-plane rotation in degrees.

    In a config, ``augment: true`` takes these defaults, ``false`` switches everything off and a
    mapping overrides the named fields (the others keep their defaults).
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gray: float = 0.05
    noise: float = 0.0
    shift: float = 0.04
    scale: float = 0.05
    rotate: float = 0.0

    @classmethod
    def none(cls) -> AugmentConfig:
        """Every augmentation off."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def from_dict(cls, data: Mapping[str, float] | bool | None) -> AugmentConfig:
        """From a config's ``augment`` value: True (defaults), False / None (off) or a mapping.

        Raises:
            InputError: an unknown option, a value that is not a number, or another type.
        """
        if data is None or data is False:
            return cls.none()
        if data is True:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError(f"augment must be true, false or a mapping of options, got {data!r}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown augmentation option(s): {', '.join(sorted(map(str, unknown)))}")
        try:
            return cls(**{k: float(v) for k, v in data.items()})
        except (TypeError, ValueError):
            raise InputError(f"augmentation options must be numbers, got {dict(data)}") from None

    @property
    def geometric(self) -> bool:
        return bool(self.shift or self.scale or self.rotate)


def jitter_matrix(rng: np.random.Generator, cfg: AugmentConfig, size: int = CROP_SIZE) -> np.ndarray:
    """A random 2x3 similarity in the crop frame (0-based pixels): about the crop centre."""
    scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    angle = np.radians(rng.uniform(-cfg.rotate, cfg.rotate))
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2) * size
    centre = (size - 1) / 2.0
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    lin = np.array([[c, -s], [s, c]])
    offset = centre - lin @ np.array([centre, centre]) + shift
    return np.concatenate([lin, offset[:, None]], axis=1)


def jitter_params(params: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Parameters of the face after the crop is warped by ``matrix``.

    Args:
        params: (..., 62) de-whitened parameters.
        matrix: 2x3 similarity ``crop' = A·crop + b`` in the ddfa crop frame (0-based pixels, y
            down), as ``cv2.warpAffine`` uses it.

    Returns:
        (..., 62) parameters whose projection is the warped projection: with ``D = diag(1, -1)``
        and ``e = (1, size)`` (crop = D·(model − e)), rows 0-1 of ``P`` become ``L·P[:2]`` with
        ``L = D·A·D`` and the translation gains ``e − L·e + D·b``; row 2 (depth) is scaled by the
        similarity's scale so that the 3D transform stays a similarity. Shape and expression are
        unchanged.
    """
    params = np.asarray(params, dtype=np.float64)
    lin, off = np.asarray(matrix, dtype=np.float64)[:, :2], np.asarray(matrix, dtype=np.float64)[:, 2]
    flip = np.diag([1.0, -1.0])
    e = np.array([1.0, float(size)])
    big_l = flip @ lin @ flip
    shift = e - big_l @ e + flip @ off
    pose = pose_matrix(params)
    new = pose.copy()
    new[..., :2, :] = np.einsum("ij,...jk->...ik", big_l, pose[..., :2, :])
    new[..., :2, 3] += shift
    new[..., 2, :] *= np.sqrt(abs(np.linalg.det(lin)))
    return join_params(new, coefficients(params)).astype(np.float32)


def colour_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(H, W, 3) BGR uint8 or float -> float32 BGR with brightness/contrast/saturation jitter."""
    img = image.astype(np.float32)
    if cfg.brightness:
        img *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    if cfg.contrast:
        factor = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
        img = (img - img.mean()) * factor + img.mean()
    gray = img @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma
    if cfg.gray and rng.random() < cfg.gray:
        img = np.repeat(gray[..., None], 3, axis=2)
    elif cfg.saturation:
        factor = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        img = (img - gray[..., None]) * factor + gray[..., None]
    if cfg.noise:
        img += rng.normal(0.0, cfg.noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255)


def augment(image: np.ndarray, params: np.ndarray, rng: np.random.Generator,
            cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Augment one (120, 120, 3) BGR crop and its (62,) parameters; returns float32 image, params."""
    if cfg.geometric:
        matrix = jitter_matrix(rng, cfg, image.shape[0])
        image = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        params = jitter_params(params, matrix, image.shape[0])
    return colour_jitter(image, rng, cfg), params


# ---------------------------------------------------------------------- torch dataset
def read_crop(path: Path) -> np.ndarray:
    """Read one crop as (120, 120, 3) uint8 BGR (other sizes are resized bilinearly).

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
    """
    image = read_image(path)
    if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
        image = cv2.resize(image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)
    return image


class CropDataset(Dataset):
    """Crops + parameters as a torch dataset with seeded per-sample augmentation.

    The augmentation of sample ``i`` in epoch ``e`` is drawn from
    ``numpy.random.default_rng([seed, e, i])``: independent of workers, ranks and restarts, so a
    resumed run sees the same data as an uninterrupted one. Call :meth:`set_epoch` before each
    epoch.

    Args:
        source: the crops and parameters.
        augment: an :class:`AugmentConfig` (None: no augmentation).
        preload: load all crops into memory now (True / False / "auto": if under 2 GiB).
        seed: augmentation seed.
    """

    def __init__(self, source: CropSource, augment: AugmentConfig | None = None,
                 preload: bool | Literal["auto"] = "auto", seed: int = 0):
        self.source = source
        self.augment = augment or AugmentConfig.none()
        self.seed = int(seed)
        self.epoch = 0
        if preload == "auto":
            preload = len(source) * CROP_SIZE * CROP_SIZE * 3 <= PRELOAD_LIMIT
        self.images = np.stack([read_crop(p) for p in source.paths]) if preload and len(source) else None

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def image(self, index: int) -> np.ndarray:
        return self.images[index] if self.images is not None else read_crop(self.source.paths[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, params = self.image(index), self.source.params[index]
        if self.augment != AugmentConfig.none():
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            image, params = augment(image, params, rng, self.augment)
        x = (np.asarray(image, np.float32).transpose(2, 0, 1) - np.float32(127.5)) / np.float32(128.0)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(params, np.float32))


def _worker_init(_worker_id: int) -> None:
    # (not cv2.setNumThreads here: in a forked child whose parent has used OpenCV's thread
    # pool it waits for threads that do not exist, for ever; make_loader sets it beforehand)
    torch.set_num_threads(1)


def make_loader(dataset: CropDataset, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                world_size: int = 1, num_workers: int = 2, pin_memory: bool = False,
                drop_last: bool = True) -> DataLoader:
    """A loader over ``dataset`` for one process of ``world_size``.

    Shuffling uses :class:`torch.utils.data.DistributedSampler` (also for one process), whose
    permutation depends only on ``seed`` and the epoch: rank r's k-th batch of ``batch_size``
    and the other ranks' k-th batches together are exactly the k-th batch of a single process
    with batch ``batch_size * world_size``. Call ``loader.sampler.set_epoch(e)`` and
    ``dataset.set_epoch(e)`` each epoch.

    ``num_workers`` worker processes decode and augment (each single-threaded); 2 keeps two
    CPU cores busy. They are forked (the dataset's preloaded crops are shared, not copied), so
    with workers this process's OpenCV runs sequentially from here on (``cv2.setNumThreads(0)``,
    inherited by the workers): a forked worker that touches OpenCV's thread pool of its parent
    can wait for ever.
    """
    if num_workers > 0:
        cv2.setNumThreads(0)
    sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                                          shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, worker_init_fn=_worker_init,
                      persistent_workers=False)


# ---------------------------------------------------------------------- writing ddfa's format
def write_ddfa_dataset(folder: str | os.PathLike, names: Sequence[str], params: np.ndarray, *,
                       meta: dict | None = None, pose: np.ndarray | None = None) -> Path:
    """Write ``params.npz`` of ddfa's format (the images must already be under ``folder/images``)."""
    folder = Path(folder)
    params = np.asarray(params, dtype=np.float32)
    _check_params(params, len(names), folder / PARAMS_FILE)
    info = {"format": DDFA_FORMAT, "version": DDFA_FORMAT_VERSION, "size": CROP_SIZE, "frame": "ddfa-crop",
            "params": "de-whitened 62-d: P (3x4 row-major), 40 shape, 10 expression"}
    info.update(meta or {})
    arrays: dict[str, Any] = {"params": params, "names": np.asarray(list(names), dtype=str),
                              "meta": np.asarray(json.dumps(info))}
    if pose is not None:
        arrays["pose"] = np.asarray(pose, dtype=np.float32)
    path = folder / PARAMS_FILE
    np.savez(path, **arrays)
    return path


def write_3ddfa_dataset(folder: str | os.PathLike, names: Sequence[str], params: np.ndarray,
                        whitening: Whitening, list_name: str = "train.list",
                        pickle_name: str = "param_all_norm.pkl") -> tuple[Path, Path]:
    """Write a list file + pickle of whitened params in 3DDFA's format (images relative to ``folder``)."""
    import pickle

    folder = Path(folder)
    list_path, pkl_path = folder / list_name, folder / pickle_name
    list_path.write_text("".join(f"{n}\n" for n in names))
    with open(pkl_path, "wb") as handle:
        pickle.dump(np.ascontiguousarray(whitening.whiten(np.asarray(params, np.float32)), dtype=np.float32),
                    handle, protocol=4)
    return list_path, pkl_path


__all__ = [
    "AugmentConfig",
    "CropDataset",
    "CropSource",
    "augment",
    "colour_jitter",
    "jitter_matrix",
    "jitter_params",
    "make_loader",
    "read_3ddfa_dataset",
    "read_ddfa_dataset",
    "read_source",
    "write_3ddfa_dataset",
    "write_ddfa_dataset",
]
