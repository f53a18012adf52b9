"""The face-detector plug-in interface and registry.

A detector is any object with ``detect(image) -> Detections`` where ``image`` is an
(H, W, 3) uint8 BGR array. Register a factory under a name with :func:`register_detector`
to make it available as ``FaceAligner(detector="name")`` and ``ddfa align --detector name``.
A plain callable returning an (K, 4) or (K, 5) array also works (see :func:`as_detector`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..boxes import RoiMapping
from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime import BaseOptions


#: the detector plug-in of ``FaceAligner``, ``ddfa align`` and ``ddfa video`` by default
DEFAULT_DETECTOR = "yunet"

#: the order of the 5 facial points of :attr:`Detections.keypoints` and ``Face.keypoints5``
#: (the person's right / left: a frontal face's right eye is on the image's left)
KEYPOINT_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, best first.

    Attributes:
        boxes: (K, 4) float32 ``(x1, y1, x2, y2)`` in image pixels (0-based, origin at the
            top-left pixel centre, y down), in descending score.
        scores: (K,) float32 confidences in [0, 1] (1.0 for user-given boxes).
        keypoints: (K, 5, 2) float32 ``(x, y)`` image pixels of 5 facial points in the order
            of :data:`KEYPOINT_NAMES` (the person's right eye, left eye, nose tip, right and
            left mouth corners), or None when the detector gives none (FaceBoxes, given boxes).
        roi_mapping: the box-to-roi rule of the detector that found these boxes (set by
            :meth:`ddfa.FaceAligner.detect`, and by ``ddfa batch``'s detection stage), so that an
            aligner without that detector crops them as their own detector's aligner would;
            None: the aligning :class:`~ddfa.FaceAligner`'s rule.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None
    roi_mapping: RoiMapping | None = None

    def __post_init__(self):
        if self.keypoints is not None and np.shape(self.keypoints) != (len(self.boxes), 5, 2):
            raise InputError(f"keypoints: expected shape ({len(self.boxes)}, 5, 2), got {np.shape(self.keypoints)}")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, keypoints: bool = False) -> Detections:
        """No faces (with an empty (0, 5, 2) keypoint array when ``keypoints``)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32) if keypoints else None)

    @classmethod
    def from_array(cls, boxes, source: str = "boxes") -> Detections:
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
        order = np.argsort(-scores, kind="stable")  # best first; equal scores keep their order
        return cls(np.ascontiguousarray(arr[order, :4]), np.ascontiguousarray(scores[order]))

    def top(self, k: int | None) -> Detections:
        """The ``k`` best faces (all when ``k`` is None); boxes are kept best first."""
        return self if k is None else self.select(slice(0, k))

    def select(self, index) -> Detections:
        """The faces at ``index`` (a slice, an int array or a bool mask), in that order."""
        if isinstance(index, (list, tuple)):
            index = np.asarray(index, dtype=np.int64).reshape(-1)
        return Detections(self.boxes[index].reshape(-1, 4), self.scores[index].reshape(-1),
                          None if self.keypoints is None else self.keypoints[index].reshape(-1, 5, 2),
                          self.roi_mapping)

    def with_roi_mapping(self, mapping: RoiMapping | None) -> Detections:
        """These detections marked with their detector's box-to-roi rule (kept if already set)."""
        return self if self.roi_mapping is not None or mapping is None else replace(self, roi_mapping=mapping)


@runtime_checkable
class Detector(Protocol):
    """What ddfa needs from a face detector.

    A detector may also have ``prepare(image_sizes)``: start getting ready, in the background,
    for photos of these ``(height, width)`` sizes (:meth:`ddfa.FaceAligner.prepare` calls it
    when present; the single-shot detectors compile their per-shape OpenVINO models there).
    """

    def detect(self, image: np.ndarray) -> Detections:
        """(H, W, 3) uint8 BGR image -> faces, best first."""
        ...


class CallableDetector:
    """Wrap ``fn(image) -> (K, 4|5) array`` as a :class:`Detector`."""

    def __init__(self, fn: Callable[[np.ndarray], object]):
        self.fn = fn

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.from_array(self.fn(image), source="detector output")


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """A registered detector plug-in and what it needs.

    Attributes:
        name: the name given to ``FaceAligner(detector=...)`` and ``--detector``.
        factory: ``factory(base_options, options) -> Detector``; ``base_options`` is the
            runtime context (:class:`~ddfa.BaseOptions`: assets, device, backend, threads),
            ``options`` an instance of ``options_type`` (or None when it has none).
        options_type: a frozen dataclass of the plug-in's own options (thresholds, input
            size, ...), or None. Options are passed by name and checked against its fields.
        description: one line for listings.
    """

    name: str
    factory: Callable[..., Detector]
    options_type: type | None = None
    description: str = ""

    def make_options(self, options: Any = None, **overrides: Any) -> Any:
        """An ``options_type`` instance from an instance, a mapping and/or keyword overrides.

        Raises:
            InputError: options for a plug-in that takes none, or an unknown option name.
        """
        if isinstance(options, Mapping):
            overrides = {**options, **overrides}
            options = None
        if self.options_type is None:
            if options is not None or overrides:
                raise InputError(f"detector {self.name!r} takes no options, got {sorted(overrides) or options!r}")
            return None
        if options is not None and not isinstance(options, self.options_type):
            raise InputError(f"detector {self.name!r} takes {self.options_type.__name__}, got {type(options).__name__}")
        names = {f.name for f in fields(self.options_type)}
        unknown = set(overrides) - names
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)} for detector {self.name!r}; "
                             f"expected {sorted(names)}")
        try:
            if options is not None:
                return replace(options, **overrides)  # type: ignore[type-var]
            return self.options_type(**overrides)
        except TypeError as exc:
            raise InputError(f"detector {self.name!r}: {exc}") from None


DETECTORS: dict[str, DetectorSpec] = {}


def register_detector(name: str, *, options: type | None = None, description: str = ""):
    """Decorator registering ``factory(base_options, options) -> Detector`` under ``name``.

    Args:
        name: the plug-in's name.
        options: the plug-in's options dataclass (frozen), or None when it has none.
        description: one line for listings.

    Example:
        >>> @register_detector("my-detector", options=MyOptions)
        ... def make(base_options, options):
        ...     return MyDetector(base_options.assets, options)
    """

    def wrap(factory):
        DETECTORS[name] = DetectorSpec(name=name, factory=factory, options_type=options, description=description)
        return factory

    return wrap


def list_detectors() -> list[str]:
    """Names of the registered detector plug-ins."""
    return sorted(DETECTORS)


def detector_spec(name: str) -> DetectorSpec:
    try:
        return DETECTORS[name]
    except KeyError:
        raise InputError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}") from None


def create_detector(name_or_detector: Any, *, base_options: BaseOptions | None = None, options: Any = None,
                    **option_overrides: Any) -> Detector | None:
    """A detector from a registered name, a :class:`Detector`, a callable, or None.

    Args:
        name_or_detector: a registered name (:func:`list_detectors`), an object with
            ``detect(image)``, a callable ``image -> (K, 4|5) boxes``, or None / ``"none"``.
        base_options: the runtime context for named plug-ins (default: ``BaseOptions()``).
        options, **option_overrides: the plug-in's options, as its options dataclass, a mapping
            and/or keywords by field name (named plug-ins only).
    """
    if name_or_detector is None or name_or_detector == "none":
        if options is not None or option_overrides:
            raise InputError("detector options given without a detector")
        return None
    if isinstance(name_or_detector, str):
        from ..runtime import BaseOptions

        spec = detector_spec(name_or_detector)
        opts = spec.make_options(options, **option_overrides)
        return spec.factory(base_options or BaseOptions(), opts)
    if options is not None or option_overrides:
        raise InputError("detector options apply to registered detector names only")
    if hasattr(name_or_detector, "detect"):
        return name_or_detector
    if callable(name_or_detector):
        return CallableDetector(name_or_detector)
    raise InputError(f"not a detector: {name_or_detector!r}")
