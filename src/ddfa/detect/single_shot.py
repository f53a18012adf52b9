"""Common machinery of the single-shot ONNX detectors (YuNet, CenterFace): options, the scale
policy's passes (:mod:`ddfa.detect.scale`), batched network runs, one NMS, and the 5 points.

A subclass says how to turn tiles into network inputs and raw outputs into candidate boxes
(:meth:`SingleShotDetector._decode`); everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ..boxes import RoiMapping, nms
from ..errors import InputError
from .base import Detections
from .scale import ScaleOptions, pass_images, pass_inputs, plan_passes, to_photo

#: tiles run through the network together (bounds the input batch to ~40 MB at 640 x 640)
MAX_BATCH = 8


@dataclass(frozen=True, kw_only=True)
class SingleShotOptions(ScaleOptions):
    """Thresholds and scale policy of a single-shot detector.

    Attributes:
        score_threshold: faces scoring at or below this are dropped.
        nms_threshold: IoU above which the weaker of two boxes is dropped (within and across
            passes and tiles).
        top_k: candidates kept per network input before NMS, best first.
        keep_top_k: faces kept after NMS, best first.
        det_size, min_face, level_ratio, tile_overlap: the scale policy
            (:class:`~ddfa.detect.scale.ScaleOptions`).
    """

    score_threshold: float = 0.5
    nms_threshold: float = 0.3
    top_k: int = 5000
    keep_top_k: int = 750

    def __post_init__(self):
        self.check_scale(32)
        for name in ("score_threshold", "nms_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
        for name in ("top_k", "keep_top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")


class SingleShotDetector:
    """Base class: run the passes of the scale policy and merge them.

    Subclasses set :attr:`name`, :attr:`roi_mapping`, :attr:`stride`, :attr:`min_input_face`
    and implement :meth:`_network_input` and :meth:`_decode`.
    """

    name: str = "single-shot"
    #: box-to-roi rule fitted for this detector's boxes (see ``experiments/fit_roi_mapping.py``)
    roi_mapping: RoiMapping
    #: network inputs are padded to multiples of this
    stride: int = 32
    #: smallest face (pixels at the network input) the scale policy relies on finding
    min_input_face: float = 16.0
    backend = "onnxruntime"
    precision = "f32"

    def __init__(self, options: SingleShotOptions):
        options.check_scale(self.stride)
        self.options = options

    @staticmethod
    def merge_options(options_type: type, options: SingleShotOptions | None, overrides: dict) -> SingleShotOptions:
        """``options`` (default: ``options_type()``) with keyword ``overrides`` of its fields.

        Raises:
            InputError: an unknown option name or a bad value.
        """
        options = options or options_type()
        if not overrides:
            return options
        names = {f.name for f in fields(options_type)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(f"unknown option(s) {unknown} for {options_type.__name__}; expected {sorted(names)}")
        return replace(options, **overrides)

    # -- to implement
    def _network_input(self, batch: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 BGR tiles -> the network's input array."""
        raise NotImplementedError

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Raw network outputs for one input batch."""
        raise NotImplementedError

    def _decode(self, outputs: list[np.ndarray], input_size: tuple[int, int]
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Raw outputs -> per input: ``(boxes (K, 4), scores (K,), keypoints (K, 5, 2))`` in
        network-input pixels, scores above the threshold, at most ``top_k``, best first."""
        raise NotImplementedError

    # -- shared
    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pass's detections in photo pixels, before the final NMS."""
        height, width = image.shape[:2]
        boxes, scores, points = [], [], []
        passes = plan_passes(height, width, self.options, stride=self.stride, min_input_face=self.min_input_face)
        for spec, scaled in zip(passes, pass_images(image, passes)):
            inputs = pass_inputs(scaled, spec)
            for start in range(0, len(inputs), MAX_BATCH):
                chunk = inputs[start:start + MAX_BATCH]
                decoded = self._decode(self._forward(self._network_input(chunk)), spec.input_size)
                for n, (b, s, k) in enumerate(decoded):
                    b, s, k = to_photo(spec, start + n, b, s, k)
                    boxes.append(b)
                    scores.append(s)
                    points.append(k)
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)

    def input_shapes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The (N, h, w, 3) shapes of the network inputs :meth:`detect` runs for a ``height`` x
        ``width`` photo (one per batch of tiles of each pass of the scale policy)."""
        shapes = []
        for spec in plan_passes(height, width, self.options, stride=self.stride, min_input_face=self.min_input_face):
            count = len(spec.tiles)
            shapes += [(min(MAX_BATCH, count - start), *spec.input_size, 3) for start in range(0, count, MAX_BATCH)]
        return list(dict.fromkeys(shapes))

    def prepare(self, image_sizes) -> None:
        """Start getting the network ready for photos of these ``(height, width)`` sizes, in the
        background: OpenVINO compiles one model per input shape (or imports it from the cache,
        0.1-0.15 s for YuNet), so the first :meth:`detect` of such a photo waits less; other
        engines need nothing."""
        compile_in_background = getattr(getattr(self, "runner", None), "compile_in_background", None)
        if compile_in_background is not None:
            compile_in_background(*dict.fromkeys(s for h, w in image_sizes for s in self.input_shapes(h, w)))

    def detect(self, image: np.ndarray) -> Detections:
        """(H, W, 3) uint8 BGR photo -> faces (boxes, scores, 5 points) in photo pixels, best first."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"{self.name}: expected an (H, W, 3) uint8 BGR image, got {image.dtype} {image.shape}")
        boxes, scores, points = self.candidates(image)
        if not len(boxes):
            return Detections.empty(keypoints=True)
        keep = nms(boxes, scores, self.options.nms_threshold)[: self.options.keep_top_k]
        return Detections(np.ascontiguousarray(boxes[keep]), np.ascontiguousarray(scores[keep]),
                          np.ascontiguousarray(points[keep]))


def top_candidates(scores: np.ndarray, threshold: float, top_k: int) -> np.ndarray:
    """Indices of the scores above ``threshold``, best first, at most ``top_k``."""
    rows = np.flatnonzero(scores > threshold)
    if rows.size > top_k:
        rows = rows[np.argpartition(-scores[rows], top_k - 1)[:top_k]]
    return rows[np.argsort(-scores[rows], kind="stable")]
