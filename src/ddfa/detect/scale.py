"""Scale policy of the single-shot detectors (YuNet, CenterFace): which resolutions a photo is
searched at, and how the passes are merged.

A face detector finds faces within a band of sizes at its input (YuNet: about 10 to 300 px).
Shrinking every photo to one fixed size (FaceBoxes' "fit 720 x 1080") loses the small faces of
large photos; running at full resolution loses the large ones and costs too much. ddfa plans
the passes from the photo size and its options (:class:`ScaleOptions`):

1. **Whole-photo pass** at the *working resolution*: the photo scaled by
   ``s0 = min(1, det_size / max(H, W))`` (never enlarged), padded to the network's stride.
   It finds faces from ``min_input_face / s0`` photo pixels up to about the photo's size.
2. **Finer passes** only when that misses faces the caller asked for: if ``min_face`` photo
   pixels would be smaller than ``min_input_face`` network pixels at ``s0``, further levels
   ``s1 < s2 < ... <= min(1, min_input_face / min_face)`` follow, spaced by at most
   ``level_ratio``, each cut into ``det_size x det_size`` tiles overlapping by
   ``tile_overlap`` pixels (all tiles of a level run as one network batch).
3. **Merge.** In a finer level a detection is kept only if its centre lies in the tile's
   *core* (the tile minus half of each overlap shared with a neighbour, so every point of the
   level belongs to exactly one core) and its box is at most ``tile_overlap`` level pixels on
   its longer side: such a face lies wholly inside the tile, and larger or cut faces are the
   job of a coarser level, where they are at least ``tile_overlap / level_ratio`` pixels.
   All passes are then merged by :func:`ddfa.boxes.nms`.
4. **Images.** Each pass's image is the photo averaged down by area (:func:`pass_images`):
   from the next finer pass's image where there is one, which is cheaper than from the
   photo and finds the same faces.

With the defaults (``det_size`` 640, ``min_face`` 40, ``level_ratio`` 5, ``tile_overlap``
160) and YuNet's ``min_input_face`` of 20 px (where it finds 98% of the development faces; 95%
at 16 px):

* a photo up to 640 px is searched once at full size: faces from about 14-16 px up;
* a 720p frame once at 640 x 360: faces from about 32 px (64 px faces: 96-100% found);
* a 1080p frame at 640 x 360 plus 2 tiles of 960 x 540: faces from 40 px;
* a 6000 x 6000 photo at 640 x 640 plus 36 tiles of 3000 x 3000: faces from 40 px (93-99%
  found at 40 px) up to the whole photo.

So the smallest face found (95%) at the defaults is about 14 px in photos up to 640 px, 32 px in a
720p frame and 40 px (``min_face``) in larger photos; ``min_face=20`` halves it at about four
times the tiles. Measured by ``benchmarks/bench_scale_policy.py`` and checked in
``tests/core/test_detectors.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True, kw_only=True)
class ScaleOptions:
    """Where a single-shot detector looks (see the module docstring).

    Attributes:
        det_size: working resolution: the longer photo side is scaled down to this many pixels
            for the whole-photo pass (never up); also the tile side of finer passes.
        min_face: smallest face to find, in photo pixels (shorter box side); finer tiled
            passes are added for large photos when the whole-photo pass cannot see faces this
            small. None: the whole-photo pass only.
        level_ratio: largest scale step between two passes.
        tile_overlap: overlap of neighbouring tiles, in level pixels; also the largest face a
            finer pass keeps. Faces up to ``min_input_face * level_ratio`` (100 px for YuNet at
            the defaults) must fit, so that the coarser pass takes over above it.
    """

    det_size: int = 640
    min_face: float | None = 40.0
    level_ratio: float = 5.0
    tile_overlap: int = 160

    def check_scale(self, stride: int) -> None:
        """Raise :class:`InputError` for values the policy cannot work with."""
        if isinstance(self.det_size, bool) or not isinstance(self.det_size, int) or self.det_size < stride:
            raise InputError(f"det_size must be an integer >= {stride}, got {self.det_size!r}")
        if self.min_face is not None and not (float(self.min_face) > 0):
            raise InputError(f"min_face must be > 0 pixels or None, got {self.min_face!r}")
        if not float(self.level_ratio) > 1.0:
            raise InputError(f"level_ratio must be > 1, got {self.level_ratio!r}")
        if isinstance(self.tile_overlap, bool) or not isinstance(self.tile_overlap, int) \
                or not 1 <= self.tile_overlap <= self.det_size // 2:
            raise InputError(f"tile_overlap must be an integer in [1, det_size / 2], got {self.tile_overlap!r}")


@dataclass(frozen=True)
class Tile:
    """One network input of a pass, in the pixels of the pass's scaled photo.

    Attributes:
        x0, y0, x1, y1: the region cut (``[x0, x1) x [y0, y1)``), integers.
        core: ``(cx0, cy0, cx1, cy1)``: a detection is kept when its centre lies in
            ``[cx0, cx1) x [cy0, cy1)`` (infinite on the scaled photo's own borders).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    core: tuple[float, float, float, float]


@dataclass(frozen=True)
class Pass:
    """One resolution of the photo and the tiles it is cut into.

    Attributes:
        scale: the scaled photo is ``round(scale * H) x round(scale * W)``.
        size: ``(height, width)`` of the scaled photo.
        tiles: the network inputs (one for the whole-photo pass).
        input_size: ``(height, width)`` of the network input (tiles zero-padded to it; a
            multiple of the network's stride).
        max_face: largest box side kept, in scaled pixels (None: no limit, whole-photo pass).
        photo_size: ``(height, width)`` of the photo.
    """

    scale: float
    size: tuple[int, int]
    tiles: tuple[Tile, ...]
    input_size: tuple[int, int]
    max_face: float | None
    photo_size: tuple[int, int]

    def to_photo_frame(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) points in scaled-photo pixels -> photo pixels (float32).

        Both frames put the origin at the centre of the top-left pixel; resizing maps pixel
        centres as ``x_photo = (x + 0.5) * W / w - 0.5`` (cv2.resize's half-pixel rule).
        """
        fx = self.photo_size[1] / self.size[1]
        fy = self.photo_size[0] / self.size[0]
        factor = np.array([fx, fy], np.float32)
        return ((np.asarray(xy, np.float32) + np.float32(0.5)) * factor - np.float32(0.5)).astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _axis_tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int, float, float]]:
    """Tiles along one axis: ``(start, end, core_start, core_end)``; the last tile ends at ``length``."""
    if length <= tile:
        return [(0, length, -math.inf, math.inf)]
    step = tile - overlap
    count = int(math.ceil((length - tile) / step)) + 1
    starts = [min(k * step, length - tile) for k in range(count)]
    out = []
    for k, start in enumerate(starts):
        lo = -math.inf if k == 0 else (start + starts[k - 1] + tile) / 2.0
        hi = math.inf if k == count - 1 else (starts[k + 1] + start + tile) / 2.0
        out.append((start, start + tile, lo, hi))
    return out


def plan_passes(height: int, width: int, options: ScaleOptions, *, stride: int, min_input_face: float) -> list[Pass]:
    """The passes of the scale policy for a ``height`` x ``width`` photo, coarsest first.

    Args:
        height, width: photo size in pixels.
        options: :class:`ScaleOptions`.
        stride: the network's input granularity (inputs are padded to multiples of it).
        min_input_face: smallest face the network finds reliably at its input, pixels.
    """
    s0 = min(1.0, options.det_size / max(height, width))
    scales = [s0]
    if options.min_face is not None:
        finest = min(1.0, min_input_face / float(options.min_face))
        if finest > s0 * 1.05:
            levels = int(math.ceil(math.log(finest / s0) / math.log(options.level_ratio)))
            scales += [s0 * (finest / s0) ** (k / levels) for k in range(1, levels + 1)]
    passes = []
    for k, scale in enumerate(scales):
        h, w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        if k == 0:
            tiles: tuple[Tile, ...] = (Tile(0, 0, w, h, (-math.inf, -math.inf, math.inf, math.inf)),)
            input_size = (_round_up(h, stride), _round_up(w, stride))
            passes.append(Pass(scale, (h, w), tiles, input_size, None, (height, width)))
            continue
        size = options.det_size
        xs = _axis_tiles(w, size, options.tile_overlap)
        ys = _axis_tiles(h, size, options.tile_overlap)
        tiles = tuple(Tile(x0, y0, x1, y1, (cx0, cy0, cx1, cy1))
                      for (y0, y1, cy0, cy1) in ys for (x0, x1, cx0, cx1) in xs)
        input_size = (_round_up(min(h, size), stride), _round_up(min(w, size), stride))
        passes.append(Pass(scale, (h, w), tiles, input_size, float(options.tile_overlap), (height, width)))
    return passes


def pass_images(image: np.ndarray, passes: list[Pass], *, from_finer: bool = True) -> list[np.ndarray]:
    """The photo scaled to each pass's ``size`` (same order as ``passes``), by area averaging.

    Each is made from the smallest image already made that is at least as large in both sides
    (finest first), else from the photo: the resize maps the whole image onto the whole
    output either way, so the pass's frame (:meth:`Pass.to_photo_frame`) is the same. OpenCV
    averages areas ~3x faster for whole-number factors than for others, and a smaller source
    is read faster: a 12-MP photo's passes (640 x 480, and 2016 x 1512, a whole factor of 2)
    take 15.5 ms instead of 40 ms, a 6000 x 6000 photo's 37 ms instead of 99 ms. Averaging an
    average differs from one average by a gray level or two at edges (0.03 on average there);
    the faces found on pasted development faces are the same at every canvas and face size of
    ``benchmarks/bench_scale_policy.py --compare-direct``, which times both ways
    (``from_finer=False``: every pass from the photo, as before).
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")

    height, width = image.shape[:2]
    made: list[np.ndarray] = []
    out: dict[int, np.ndarray] = {}
    for index in sorted(range(len(passes)), key=lambda i: -passes[i].size[0] * passes[i].size[1]):
        h, w = passes[index].size
        if (h, w) == (height, width):
            out[index] = image
            continue
        if h > height or w > width:  # (the policy never enlarges; kept for other plans)
            out[index] = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            continue
        sources = [m for m in made if m.shape[0] >= h and m.shape[1] >= w] if from_finer else []
        source = min(sources, key=lambda m: m.shape[0] * m.shape[1]) if sources else image
        out[index] = source if source.shape[:2] == (h, w) else cv2.resize(source, (w, h),
                                                                           interpolation=cv2.INTER_AREA)
        made.append(out[index])
    return [out[index] for index in range(len(passes))]


def pass_inputs(scaled: np.ndarray, spec: Pass) -> np.ndarray:
    """The (N, h, w, 3) uint8 network inputs of one pass: tiles of ``scaled`` (the photo scaled
    to ``spec.size``, :func:`pass_images`), zero-padded at the right and bottom to
    ``spec.input_size``."""
    if scaled.shape[:2] != spec.size:
        raise InputError(f"pass_inputs: the scaled photo is {scaled.shape[:2]}, the pass wants {spec.size}")
    ih, iw = spec.input_size
    batch = np.zeros((len(spec.tiles), ih, iw, 3), np.uint8)
    for n, t in enumerate(spec.tiles):
        batch[n, : t.y1 - t.y0, : t.x1 - t.x0] = scaled[t.y0:t.y1, t.x0:t.x1]
    return batch


def to_photo(spec: Pass, tile_index: int, boxes: np.ndarray, scores: np.ndarray,
             keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one tile (network-input pixels) -> photo pixels, keeping only those the
    policy assigns to this tile (core and size rules, see the module docstring).

    Args:
        boxes: (K, 4) ``(x1, y1, x2, y2)``; scores: (K,); keypoints: (K, 5, 2).

    Returns:
        The kept ``(boxes, scores, keypoints)`` in photo pixels (float32).
    """
    tile = spec.tiles[tile_index]
    keep = np.ones(len(boxes), bool)
    if spec.max_face is not None and len(boxes):
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + tile.x0
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + tile.y0
        cx0, cy0, cx1, cy1 = tile.core
        keep = (cx >= cx0) & (cx < cx1) & (cy >= cy0) & (cy < cy1)
        keep &= np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) <= spec.max_face
    offset = np.array([tile.x0, tile.y0], np.float32)
    out_boxes = spec.to_photo_frame(boxes[keep].reshape(-1, 2, 2) + offset).reshape(-1, 4)
    out_kps = spec.to_photo_frame(keypoints[keep] + offset).reshape(-1, 5, 2)
    return out_boxes, scores[keep].astype(np.float32), out_kps
