"""Synthetic training crops rendered from the morphable model, with their exact parameters.

Each face ``i`` of a run with seed ``S`` is drawn from ``numpy.random.default_rng([S, i])``, so
the data set does not depend on the number of worker processes:

* **shape and expression**: ``mean + std · z`` per coefficient, ``z ~ N(0, 1)`` clipped to ±3,
  with the whitening's mean and std (the statistics 3DDFA provides with its parameters);
* **pose**: yaw uniform in ``±max_yaw`` (90° by default), pitch ~ N(0, 15°) and roll ~ N(0, 12°)
  clipped to ±40° (AFLW2000-3D convention, :func:`ddfa.morphable.pose.angles_to_rotation`);
  scale ``s`` uniform in [5.1e-4, 6.7e-4] and a translation that puts the centre of the 68
  landmarks' bounding box at (59.75, 59.8) ± 2 px of the crop, as in 3DDFA's 120x120 crops
  (these ranges are the 1st-99th percentiles of the pose that ``mb05`` predicts on real crops);
  the z translation is the whitening mean's;
* **appearance**: Lambertian shading with an ambient and a directional light (random direction
  in front of the face, random intensities and tint) plus a weak Blinn-Phong highlight; skin
  albedo from a random skin tone, smooth low-frequency variation, darker brows and eyes and
  redder lips placed by the 68 landmarks of the mean face;
* **background**: gradients, smooth noise and random shapes, never photos.

The face is rasterised with :func:`ddfa.render.rasterize` at twice the crop size and reduced
with area averaging (anti-aliasing). The parameters are stored de-whitened (float32) exactly as
rendered, in ddfa's training format (:mod:`ddfa.train.data`), optionally also 3DDFA's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..assets.store import AssetsLike
from ..caching import ContentCache
from ..errors import InputError
from ..morphable.frames import CROP_SIZE, model_to_crop
from ..morphable.model import MeshVariant, MorphableModel
from ..morphable.params import (
    NUM_COEFFICIENTS,
    NUM_PARAMS,
    NUM_SHAPE,
    TRANSLATION_Z,
    Whitening,
    coefficients,
    join_params,
)
from ..morphable.pose import angles_to_rotation, pose_angles
from .data import IMAGE_DIR, write_3ddfa_dataset, write_ddfa_dataset

SynthFormat = Literal["ddfa", "3ddfa", "both"]
ImageExt = Literal["png", "jpg"]

#: where the centre of the landmarks' bounding box sits in 3DDFA's 120x120 crops (crop pixels)
CROP_CENTRE = (59.75, 59.8)
SUPERSAMPLE = 2


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """Ranges of the random faces (angles in degrees, scale in crop pixels per model unit)."""

    max_yaw: float = 90.0
    pitch_std: float = 15.0
    roll_std: float = 12.0
    max_pitch_roll: float = 40.0
    scale_range: tuple[float, float] = (5.1e-4, 6.7e-4)
    centre_jitter: float = 2.0
    coeff_clip: float = 3.0
    expression_scale: float = 1.0


DEFAULT_SYNTH = SynthConfig()


# ---------------------------------------------------------------------- per-model precomputation
class _ModelFeatures:
    """Per-vertex albedo features of one morphable model (computed once)."""

    def __init__(self, model: MorphableModel):
        self.model = model
        mean = model.mean.astype(np.float64)
        lm = mean[model.landmark_vertices]
        unit = np.ptp(mean[:, 0])  # face width in model units
        self.coords = ((mean - mean.mean(0)) / unit).astype(np.float32)  # (N, 3) roughly in [-0.5, 0.5]

        def near(chains, sigma):
            # distance (x, y of the mean face) to polylines through landmark chains
            points = []
            for chain in chains:
                a, b = lm[chain[:-1], :2], lm[chain[1:], :2]
                t = np.linspace(0.0, 1.0, 8)[:, None, None]
                points.append((a[None] * (1 - t) + b[None] * t).reshape(-1, 2))
            pts = np.concatenate(points)
            d2 = ((mean[:, None, :2] - pts[None]) ** 2).sum(-1).min(1)
            return np.exp(-d2 / (2 * (sigma * unit) ** 2)).astype(np.float32)

        self.brows = near([list(range(17, 22)), list(range(22, 27))], 0.018)
        self.eyes = near([list(range(36, 42)) + [36], list(range(42, 48)) + [42]], 0.012)
        self.lips = near([list(range(48, 60)) + [48], list(range(60, 68)) + [60]], 0.018)


#: albedo features per morphable model. The key is the model object's id: the value holds the
#: model (so the id is not reused while cached) and its arrays are read-only, and
#: :func:`~ddfa.morphable.load_morphable_model` returns one object per content.
_FEATURES: ContentCache[_ModelFeatures] = ContentCache("synthesis albedo features")


def _features(model: MorphableModel) -> _ModelFeatures:
    return _FEATURES.get_or_build(("synth-albedo", id(model)), lambda: _ModelFeatures(model))


# ---------------------------------------------------------------------- sampling
def sample_params(rng: np.random.Generator, whitening: Whitening, model: MorphableModel,
                  cfg: SynthConfig = DEFAULT_SYNTH) -> np.ndarray:
    """One random (62,) float32 de-whitened parameter vector (see the module docstring)."""
    z = np.clip(rng.standard_normal(NUM_COEFFICIENTS), -cfg.coeff_clip, cfg.coeff_clip)
    z[NUM_SHAPE:] *= cfg.expression_scale  # expression coefficients follow the shape ones
    coeffs = coefficients(whitening.mean).astype(np.float64) + coefficients(whitening.std).astype(np.float64) * z
    yaw = rng.uniform(-cfg.max_yaw, cfg.max_yaw)
    pitch = np.clip(rng.normal(0.0, cfg.pitch_std), -cfg.max_pitch_roll, cfg.max_pitch_roll)
    roll = np.clip(rng.normal(0.0, cfg.roll_std), -cfg.max_pitch_roll, cfg.max_pitch_roll)
    scale = rng.uniform(*cfg.scale_range)
    pose = np.zeros((3, 4))
    pose[:, :3] = scale * angles_to_rotation(yaw, pitch, roll)
    lm = model_to_crop(model.landmarks(join_params(pose, coeffs)))  # translation 0
    centre = (lm[:, :2].min(0) + lm[:, :2].max(0)) / 2
    target = np.asarray(CROP_CENTRE) + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter, 2)
    # crop x = Vx - 1 and crop y = 120 - Vy: move by +dx in x and -dy in model y
    pose[0, 3] = target[0] - centre[0]
    pose[1, 3] = -(target[1] - centre[1])
    pose[2, 3] = float(whitening.mean[TRANSLATION_Z])
    return join_params(pose, coeffs).astype(np.float32)


def _skin_albedo(rng: np.random.Generator, cache: _ModelFeatures) -> np.ndarray:
    """(N, 3) float32 BGR albedo in [0, 1]."""
    dark, light = np.array([0.16, 0.23, 0.35]), np.array([0.72, 0.80, 0.93])  # BGR
    tone = (dark + (light - dark) * rng.uniform(0.0, 1.0) + rng.normal(0, 0.03, 3)).astype(np.float32)
    # smooth variation: a few random low-frequency waves over the mean face
    freqs = rng.normal(0, 3.0, size=(6, 3)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, 6).astype(np.float32)
    waves = np.sin(cache.coords @ freqs.T + phases) @ rng.normal(0, 0.04, 6).astype(np.float32)
    albedo = tone[None, :] * (1.0 + waves[:, None])
    brow_col = tone * rng.uniform(0.2, 0.5)
    lip_col = tone * np.array([0.75, 0.7, 1.05], np.float32) * rng.uniform(0.75, 0.95)
    eye_col = tone * rng.uniform(0.3, 0.6)
    for weight, colour in ((cache.brows, brow_col), (cache.eyes, eye_col), (cache.lips, lip_col)):
        albedo += weight[:, None] * (colour.astype(np.float32)[None, :] - albedo)
    albedo += rng.normal(0, 0.01, albedo.shape).astype(np.float32)
    return np.clip(albedo, 0.0, 1.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 BGR background in [0, 255]: gradients, smooth noise, shapes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5, 0, 1)
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    cells = int(rng.integers(2, 16))
    noise = rng.normal(0, rng.uniform(10, 60), (cells, cells, 3)).astype(np.float32)
    img += cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    img = img.astype(np.float32)
    for _ in range(int(rng.integers(0, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 20, size // 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), r, colour, -1)
        else:
            x2, y2 = (int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, max(2, size // 20))))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))
    return np.clip(img, 0, 255)


def render_face(params: np.ndarray, model: MorphableModel, rng: np.random.Generator,
                size: int = CROP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Render one face with random appearance over a random background.

    Args:
        params: (62,) de-whitened parameters (ddfa crop frame).
        model: the morphable model to draw.

    Returns:
        ``(image, mask)``: (size, size, 3) uint8 BGR crop and (size, size) float32 coverage of
        the face in [0, 1].
    """
    from ..render import rasterize
    from ..render.dense import vertex_normals

    cache = _features(model)
    k = SUPERSAMPLE
    hi = size * k
    posed = model.vertices(np.asarray(params, np.float32))  # model frame, y up, (N, 3)
    crop = model_to_crop(posed)
    verts = np.empty_like(crop, dtype=np.float32)
    verts[:, :2] = (crop[:, :2] + 0.5) * k - 0.5  # pixel centres of the supersampled image
    verts[:, 2] = crop[:, 2] * k
    raster = rasterize(verts, model.triangles, hi, hi)
    # unit normals out of the face; the crop frame has y down: flip y back to the model frame
    normals = vertex_normals(crop, model.triangles) * np.array([1.0, -1.0, 1.0], np.float32)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.3, 1.5)])
    light /= np.linalg.norm(light)
    ambient, diffuse = rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.85)
    tint = 1.0 + rng.normal(0, 0.05, 3)
    light = light.astype(np.float32)
    lambert = np.clip(normals @ light, 0.0, None)
    half = light + np.array([0.0, 0.0, 1.0])
    half = (half / np.linalg.norm(half)).astype(np.float32)
    spec = rng.uniform(0.0, 0.15) * np.clip(normals @ half, 0.0, None) ** rng.uniform(8, 32)
    albedo = _skin_albedo(rng, cache)
    shade = (np.float32(ambient) + np.float32(diffuse) * lambert)[:, None] * tint.astype(np.float32)
    colour = (albedo * shade + spec[:, None].astype(np.float32)) * np.float32(255.0)
    pixels = _background(rng, hi).reshape(-1, 3)
    pixels[raster.pixels] = raster.interpolate_pixels(np.clip(colour, 0, 255), model.triangles)
    image: np.ndarray = pixels.reshape(hi, hi, 3)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask: np.ndarray = cv2.resize(raster.mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    image += rng.normal(0, rng.uniform(0, 4), image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def synth_sample(index: int, seed: int, model: MorphableModel, whitening: Whitening,
                 cfg: SynthConfig = DEFAULT_SYNTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face ``index`` of seed ``seed``: ``(image (120,120,3) uint8 BGR, params (62,) float32, mask)``."""
    rng = np.random.default_rng([int(seed), int(index)])
    params = sample_params(rng, whitening, model, cfg)
    image, mask = render_face(params, model, rng)
    return image, params, mask


@dataclass(frozen=True, kw_only=True)
class _Chunk:
    """Faces ``start`` to ``stop - 1`` of a run, for one worker (plain values: it is pickled)."""

    start: int
    stop: int
    seed: int
    out: str
    asset_root: str
    mesh: MeshVariant
    whitening: str
    cfg: SynthConfig
    image_ext: ImageExt


def _render_chunk(chunk: _Chunk) -> tuple[int, np.ndarray]:
    """Render and write one chunk's crops; returns ``(start, (stop - start, 62) float32 params)``."""
    from ..assets.store import AssetStore
    from ..morphable.model import load_morphable_model
    from ..morphable.params import load_whitening

    cv2.setNumThreads(1)
    store = AssetStore(chunk.asset_root)
    model, white = load_morphable_model(store, chunk.mesh), load_whitening(store, chunk.whitening)
    params = np.empty((chunk.stop - chunk.start, NUM_PARAMS), np.float32)
    for i in range(chunk.start, chunk.stop):
        image, p, _ = synth_sample(i, chunk.seed, model, white, chunk.cfg)
        params[i - chunk.start] = p
        cv2.imwrite(str(Path(chunk.out) / IMAGE_DIR / f"{i:07d}.{chunk.image_ext}"), image)
    return chunk.start, params


def _check_synth_options(num: int, fmt: str, image_ext: str) -> None:
    if num <= 0:
        raise InputError(f"--num must be positive, got {num}")
    if fmt not in ("ddfa", "3ddfa", "both"):
        raise InputError(f"format must be 'ddfa', '3ddfa' or 'both', got {fmt!r}")
    if image_ext not in ("png", "jpg"):
        raise InputError(f"image extension must be png or jpg, got {image_ext!r}")


def _render_all(chunks: list[_Chunk], num: int, workers: int, progress: bool) -> np.ndarray:
    """Run the chunks (in ``workers`` processes when > 1) -> (num, 62) float32 parameters."""
    import contextlib

    params = np.empty((num, NUM_PARAMS), np.float32)
    with contextlib.ExitStack() as stack:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=num, desc="synth", dynamic_ncols=True))
        results: Iterable[tuple[int, np.ndarray]] = map(_render_chunk, chunks)
        if workers > 1:
            import multiprocessing as mp

            pool = stack.enter_context(mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(workers))
            results = pool.imap_unordered(_render_chunk, chunks)
        for start, block in results:
            params[start:start + len(block)] = block
            if bar is not None:
                bar.update(len(block))
    return params


def synthesize(out: str | os.PathLike, num: int, *, seed: int = 0, assets: AssetsLike = None,
               mesh: MeshVariant = "noneck", whitening: str = "v2", workers: int = 1, fmt: SynthFormat = "ddfa",
               image_ext: ImageExt = "png", cfg: SynthConfig = DEFAULT_SYNTH, progress: bool = False) -> Path:
    """Render ``num`` synthetic crops into ``out`` in ddfa's training format (see module docstring).

    Args:
        out: output folder (created; ``images/`` + ``params.npz``).
        num: number of faces.
        seed: the data set's seed; face i depends only on (seed, i).
        assets: asset store or directory (None: ``$DDFA_HOME``).
        mesh: morphable model drawn (``"noneck"`` or ``"full"``).
        whitening: statistics the coefficients are drawn from (``"v2"`` or ``"v1"``).
        workers: processes rendering in parallel.
        fmt: ``"ddfa"``, ``"3ddfa"`` (also write ``train.list`` + ``param_all_norm.pkl`` with v1
            whitening) or ``"both"`` (the same as ``"3ddfa"``; ddfa's files are always written).
        image_ext: ``png`` (lossless) or ``jpg``.

    Returns:
        the path of ``params.npz``.
    """
    from ..assets.store import resolve_assets
    from ..morphable.model import load_morphable_model
    from ..morphable.params import load_whitening

    _check_synth_options(num, fmt, image_ext)
    assets = resolve_assets(assets)
    load_morphable_model(assets, mesh)
    load_whitening(assets, whitening)  # fail early on missing assets
    out = Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    size = max(1, min(256, -(-num // max(1, workers))))
    chunks = [_Chunk(start=s, stop=min(num, s + size), seed=seed, out=str(out), asset_root=str(assets.root),
                     mesh=mesh, whitening=whitening, cfg=cfg, image_ext=image_ext) for s in range(0, num, size)]
    params = _render_all(chunks, num, workers, progress)
    names = [f"{i:07d}.{image_ext}" for i in range(num)]
    meta = {"generator": "ddfa synth", "seed": int(seed), "mesh": mesh, "statistics": whitening,
            "config": json.loads(json.dumps(asdict(cfg)))}
    path = write_ddfa_dataset(out, names, params, meta=meta, pose=pose_angles(params).astype(np.float32))
    if fmt in ("3ddfa", "both"):
        write_3ddfa_dataset(out, [f"{IMAGE_DIR}/{n}" for n in names], params, load_whitening(assets, "v1"))
    return path


__all__ = ["SynthConfig", "render_face", "sample_params", "synth_sample", "synthesize"]
