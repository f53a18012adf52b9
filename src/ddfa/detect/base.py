"""The face-detector plug-in interface and registry.

A detector is any object with ``detect(image) -> Detections`` where ``image`` is an
(H, W, 3) uint8 BGR array. Register a factory under a name with :func:`register_detector`
to make it available as ``FaceAligner(detector="name")`` and ``ddfa align --detector name``.
A plain callable returning an (K, 4) or (K, 5) array also works (see :func:`as_detector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Detections:
    """Face boxes found in one image.

    Attributes:
        boxes: (K, 4) float32 ``(x1, y1, x2, y2)`` in image pixels (0-based, y down),
            in descending score.
        scores: (K,) float32 confidences in [0, 1] (1.0 for user-given boxes).
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    @classmethod
    def from_array(cls, boxes, source: str = "boxes") -> "Detections":
        """From (K, 4) boxes or (K, 5) boxes with scores; validated."""
        arr = np.asarray(boxes, dtype=np.float32)
        if arr.size == 0:
            return cls.empty()
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise InputError(f"{source}: expected boxes of shape (K, 4) or (K, 5), got {np.shape(boxes)}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{source}: boxes contain NaN or infinite values")
        if np.any(arr[:, 2] <= arr[:, 0]) or np.any(arr[:, 3] <= arr[:, 1]):
            raise InputError(f"{source}: each box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1")
        scores = arr[:, 4] if arr.shape[1] == 5 else np.ones(len(arr), np.float32)
        return cls(np.ascontiguousarray(arr[:, :4]), np.ascontiguousarray(scores))

    def top(self, k: int | None) -> "Detections":
        return self if k is None else Detections(self.boxes[:k], self.scores[:k])


@runtime_checkable
class Detector(Protocol):
    """What ddfa needs from a face detector."""

    def detect(self, image: np.ndarray) -> Detections:
        """(H, W, 3) uint8 BGR image -> faces, best first."""
        ...


class CallableDetector:
    """Wrap ``fn(image) -> (K, 4|5) array`` as a :class:`Detector`."""

    def __init__(self, fn: Callable[[np.ndarray], object]):
        self.fn = fn

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.from_array(self.fn(image), source="detector output")


DETECTORS: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str):
    """Decorator registering ``factory(assets=..., device=..., **options) -> Detector``."""

    def wrap(factory):
        DETECTORS[name] = factory
        return factory

    return wrap


def create_detector(name_or_detector, **kwargs) -> Detector | None:
    """A detector from a registered name, a :class:`Detector`, a callable, or None."""
    if name_or_detector is None or name_or_detector == "none":
        return None
    if isinstance(name_or_detector, str):
        try:
            factory = DETECTORS[name_or_detector]
        except KeyError:
            raise InputError(
                f"unknown detector {name_or_detector!r}; registered: {', '.join(sorted(DETECTORS))}"
            ) from None
        return factory(**kwargs)
    if hasattr(name_or_detector, "detect"):
        return name_or_detector
    if callable(name_or_detector):
        return CallableDetector(name_or_detector)
    raise InputError(f"not a detector: {name_or_detector!r}")
