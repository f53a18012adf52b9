"""``FaceAligner``: photo -> detected faces -> crops -> 3DMM parameters -> landmarks, pose, mesh.

One object wires a detector plug-in, a regressor and the morphable model; every face of every
image in a call goes through the network in one batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import numpy as np

from ..assets.store import AssetsLike, AssetStore
from ..boxes import FACEBOXES_ROI, RoiMapping, landmark_boxes
from ..detect.base import DEFAULT_DETECTOR, Detections, create_detector
from ..errors import InputError, LimitError
from ..face import Face, Pose
from ..io.image import DEFAULT_LIMITS, InputLimits, read_image, to_bgr_uint8
from ..morphable.frames import model_to_image
from ..morphable.model import load_morphable_model
from ..morphable.pose import pose_angles
from ..nets.registry import Regressor, create_model
from ..runtime import Backend, BaseOptions, Precision, resolve_base_options
from .confidence import confidence_from_uncertainty
from .crop import crop_faces, roi_from_box, roi_from_landmarks
from .refine import REFINE_MODES, RefineMode, refine_transforms, regress_refined

CropPolicy = Literal["box", "landmarks"]
Channels = Literal["bgr", "rgb"]
CROP_POLICIES: tuple[str, ...] = get_args(CropPolicy)
CHANNELS: tuple[str, ...] = get_args(Channels)
MeshVariant = Literal["noneck", "full"]
MESH_VARIANTS: tuple[str, ...] = get_args(MeshVariant)


@dataclass(frozen=True, kw_only=True)
class AlignOptions:
    """Per-call options of :class:`FaceAligner` (each can be overridden per call by keyword).

    Attributes:
        crop_policy: ``"box"``: crop from the detection box (one network pass); ``"landmarks"``:
            two-step refinement, a second pass on the crop derived from the first pass's
            landmarks (3DDFA_V2's landmark crop policy).
        max_faces: keep at most this many faces per image, best score first (None: all).
        dense: reconstruct the dense mesh of every face eagerly (it is otherwise computed on
            first access of :attr:`Face.vertices`).
        channels: channel order of image *arrays* passed in: ``"bgr"`` (OpenCV's, the default)
            or ``"rgb"`` (PIL, imageio, matplotlib). Files are always decoded correctly. The
            network was trained on BGR: RGB passed as BGR gives wrong landmarks, silently.
        limits: bounds on inputs (:class:`~ddfa.io.image.InputLimits`): pixels and bytes of
            image files (checked before decoding), and the size and position of given boxes
            relative to the image.
        refine: test-time refinement of the last pass (:mod:`ddfa.pipeline.refine`):
            ``"none"`` (one crop per face), ``"flip"`` (the crop and its mirror image) or
            ``"full"`` (plus jittered crops, 14 in all), all through the same network batch and
            combined; refined faces carry ``uncertainty`` and ``confidence``.
    """

    crop_policy: CropPolicy = "box"
    max_faces: int | None = None
    dense: bool = False
    channels: Channels = "bgr"
    limits: InputLimits = DEFAULT_LIMITS
    refine: RefineMode = "none"

    def __post_init__(self):
        if self.crop_policy not in CROP_POLICIES:
            raise InputError(f"crop_policy must be one of {CROP_POLICIES}, got {self.crop_policy!r}")
        if self.max_faces is not None and (isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int)
                                           or self.max_faces < 0):
            raise InputError(f"max_faces must be an integer >= 0 or None, got {self.max_faces!r}")
        if not isinstance(self.dense, bool):
            raise InputError(f"dense must be True or False, got {self.dense!r}")
        if self.channels not in CHANNELS:
            raise InputError(f"channels must be one of {CHANNELS}, got {self.channels!r}")
        if not isinstance(self.limits, InputLimits):
            raise InputError(f"limits must be a ddfa.io.image.InputLimits, got {type(self.limits).__name__}")
        if self.refine not in REFINE_MODES:
            raise InputError(f"refine must be one of {REFINE_MODES}, got {self.refine!r}")

    def replace(self, **overrides: Any) -> AlignOptions:
        """A copy with the given fields changed (unknown names raise :class:`InputError`)."""
        unknown = set(overrides) - {f.name for f in fields(AlignOptions)}
        if unknown:
            expected = sorted(f.name for f in fields(AlignOptions))
            raise InputError(f"unknown option(s) {sorted(unknown)}; expected {expected}")
        return replace(self, **overrides) if overrides else self


class FaceAligner:
    """3D dense face alignment of photos.

    Args:
        model: regressor name (``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``, or one added with
            :func:`~ddfa.register_model`), a checkpoint path, or a :class:`~ddfa.nets.Regressor`.
        detector: detector plug-in name (``"yunet"``, the default; ``"centerface"``,
            ``"faceboxes"`` (3DDFA_V2's, bit-identical to the original), or one added with
            :func:`~ddfa.register_detector`), a :class:`~ddfa.detect.Detector`, a callable
            ``image -> (K, 4|5) boxes``, or None / ``"none"`` (then boxes must be given). Each
            plug-in's boxes become rois by its own ``roi_mapping`` (:class:`~ddfa.boxes.RoiMapping`;
            FaceBoxes' rule for detectors without one).
        base_options: the runtime context (:class:`~ddfa.BaseOptions`: assets, device, backend,
            threads), shared by the regressor and the detector.
        assets, device, backend, threads, precision: shorthands overriding fields of
            ``base_options``: asset folder or store (None: ``$DDFA_HOME``), torch device,
            ``"auto"`` / ``"torch"`` / ``"onnxruntime"`` / ``"openvino"``, CPU threads of the
            inference engine, ``"auto"`` / ``"f32"`` / ``"bf16"`` / ``"int8"``. (numpy's own
            BLAS is the process's: its threads spin ~0.1 s after each dense mesh; set
            ``OPENBLAS_NUM_THREADS=1`` before numpy is imported, as the ``ddfa`` command does.)
        mesh: dense mesh ``"noneck"`` (3DDFA_V2, 38,365 vertices) or ``"full"`` (3DDFA, 53,215).
        options: default :class:`AlignOptions`; keyword arguments ``crop_policy``,
            ``max_faces``, ``dense``, ``channels``, ``refine`` override its fields.
        detector_options: the detector plug-in's options, as its options dataclass or a mapping
            by field name (e.g. ``{"score_threshold": 0.6, "det_size": 960}``).

    Example:
        >>> aligner = FaceAligner(assets="../shared/assets")
        >>> faces = aligner("photo.jpg")
        >>> faces[0].landmarks.shape, faces[0].pose.yaw
    """

    def __init__(
        self,
        model: str | os.PathLike | Regressor = "mb05",
        detector: Any = DEFAULT_DETECTOR,
        *,
        base_options: BaseOptions | None = None,
        assets: AssetsLike = None,
        device: str | None = None,
        backend: Backend | None = None,
        threads: int | None = None,
        precision: Precision | None = None,
        mesh: MeshVariant = "noneck",
        options: AlignOptions | None = None,
        detector_options: Any = None,
        **option_overrides: Any,
    ):
        if mesh not in MESH_VARIANTS:  # before anything is loaded
            raise InputError(f"unknown mesh {mesh!r}; expected one of {', '.join(MESH_VARIANTS)}")
        self.base_options = resolve_base_options(base_options, assets=assets, device=device, backend=backend,
                                                 threads=threads, precision=precision)
        self.options = (options or AlignOptions()).replace(**option_overrides)
        if isinstance(model, Regressor):
            self.regressor = model
        else:
            self.regressor = create_model(model, base_options=self.base_options)
        self.morphable_model = load_morphable_model(self.base_options.assets, mesh)
        self.detector = create_detector(detector, base_options=self.base_options, options=detector_options)

    def prepare(self, image_sizes: Iterable[tuple[int, int]]) -> None:
        """Start getting the networks ready for photos of these ``(height, width)`` sizes in the
        background (the detector's :meth:`prepare`, where it has one: on OpenVINO one compiled
        model per input shape), so that the first call on such a photo waits less. Optional:
        every call works without it."""
        prepare = getattr(self.detector, "prepare", None)
        if prepare is not None:
            prepare(list(image_sizes))

    @property
    def assets(self) -> AssetStore:
        """The asset store (``base_options.assets``)."""
        return self.base_options.assets

    @property
    def roi_mapping(self) -> RoiMapping:
        """The detector's box-to-roi rule (:class:`~ddfa.boxes.RoiMapping`): its own
        ``roi_mapping`` attribute, or 3DDFA_V2's FaceBoxes rule when it has none."""
        mapping = getattr(self.detector, "roi_mapping", None)
        return mapping if isinstance(mapping, RoiMapping) else FACEBOXES_ROI

    def rois_from_detections(self, detections: Detections) -> np.ndarray:
        """(K, 4) float32 roi boxes of detections of this aligner's detector (its
        :attr:`roi_mapping`, with the 5 points when the detections carry them)."""
        return roi_from_box(detections.boxes, detections.roi_mapping or self.roi_mapping, detections.keypoints)

    @property
    def device(self) -> str:
        return self.base_options.device

    def __repr__(self) -> str:
        det = getattr(self.detector, "name", type(self.detector).__name__) if self.detector else None
        return (f"FaceAligner(model={self.regressor.name!r}, detector={det!r}, "
                f"backend={self.regressor.backend!r}, mesh={self.morphable_model.name!r})")

    # ------------------------------------------------------------------ public API
    def __call__(self, image, boxes=None, **options) -> list[Face]:
        """Align every face of one image.

        Args:
            image: a path, or an (H, W, 3) uint8 BGR array (gray, BGRA, 16-bit and float
                arrays are converted).
            boxes: optional (K, 4) or (K, 5) face boxes ``(x1, y1, x2, y2[, score])`` in image
                pixels, turned into rois by 3DDFA_V2's FaceBoxes rule; or a
                :class:`~ddfa.detect.Detections` of this aligner's detector (e.g. from
                :meth:`detect`), turned into rois by its :attr:`roi_mapping`. Skips detection.
            **options: overrides of :class:`AlignOptions` fields for this call.

        Returns:
            One :class:`~ddfa.face.Face` per face, best detection score first; ``[]`` when no
            face is found.
        """
        return self.align_batch([image], None if boxes is None else [boxes], **options)[0]

    def align_batch(self, images: Sequence, boxes: Sequence | None = None, **options) -> list[list[Face]]:
        """Align every face of several images; all faces share one network batch.

        Args:
            images: paths or arrays, as for :meth:`__call__`.
            boxes: optional, one entry per image: (K, 4|5) boxes as for :meth:`__call__`, or the
                :class:`~ddfa.detect.Detections` that :meth:`detect` returned for it (so detection
                and regression can run in different processes, as ``ddfa batch`` does).

        Returns:
            For each image, its list of faces (``Face.image_index`` is the image's position).
        """
        opts = self.options.replace(**options)
        if boxes is not None and len(boxes) != len(images):
            raise InputError(f"got {len(boxes)} box lists for {len(images)} images")
        arrays = [self._load(image, opts.channels, f"images[{i}]", opts.limits) for i, image in enumerate(images)]
        detections = [(self.detect(arr), self.roi_mapping) if boxes is None
                      else self._given(boxes[i], arr.shape, opts.limits, f"boxes[{i}]")
                      for i, arr in enumerate(arrays)]
        detections = [(d.top(opts.max_faces), mapping) for d, mapping in detections]
        counts = [len(d) for d, _ in detections]
        image_index = np.repeat(np.arange(len(arrays)), counts)
        if not image_index.size:
            return [[] for _ in arrays]
        det_boxes = np.concatenate([d.boxes for d, _ in detections])
        scores = np.concatenate([d.scores for d, _ in detections])
        keypoints = [None if d.keypoints is None else d.keypoints[k] for d, _ in detections for k in range(len(d))]
        rois = np.concatenate([roi_from_box(d.boxes, mapping, d.keypoints) for d, mapping in detections])
        last = opts.crop_policy == "box"
        params, landmarks, spread = self._regress(arrays, image_index, rois, opts.refine if last else "none")
        if not last:  # landmark crop policy: the second pass is the refined one
            rois = roi_from_landmarks(landmarks)
            params, landmarks, spread = self._regress(arrays, image_index, rois, opts.refine)
        faces = self._make_faces(params, landmarks, rois, det_boxes, scores, image_index, opts.dense, keypoints,
                                 spread, opts.refine)
        out: list[list[Face]] = [[] for _ in arrays]
        for face in faces:
            out[face.image_index].append(face)
        return out

    def detect(self, image, *, channels: Channels | None = None) -> Detections:
        """Run the detector on one image (path or array; ``channels`` as in :class:`AlignOptions`)."""
        if self.detector is None:
            raise InputError("this FaceAligner has no detector: pass boxes=...")
        detections = self.detector.detect(self._load(image, channels or self.options.channels))
        return detections.with_roi_mapping(self.roi_mapping)

    def _given(self, boxes, shape: tuple[int, ...], limits: InputLimits, source: str) -> tuple[Detections, RoiMapping]:
        """Given boxes (checked against the image and the limits) and the rule that turns them
        into rois: a :class:`Detections` from this aligner's detector uses its mapping, plain
        boxes 3DDFA_V2's FaceBoxes rule."""
        if isinstance(boxes, Detections):
            check_boxes(boxes.boxes, shape, limits, source)
            return boxes, boxes.roi_mapping or self.roi_mapping
        return check_boxes(boxes, shape, limits, source), FACEBOXES_ROI

    def align_rois(self, image, roi_boxes, *, dense: bool = False, boxes=None, scores=None,
                   refine: RefineMode | None = None) -> list[Face]:
        """Regress faces from given roi boxes (the tracking step of video: rois from landmarks).

        Args:
            image: path or BGR array.
            roi_boxes: (K, 4) roi boxes ``(sx, sy, ex, ey)``.
            boxes, scores: optional (K, 4) boxes and (K,) scores to store on the faces (default:
                the landmarks' bounding boxes and 1.0).
            refine: test-time refinement of this pass (None: the aligner's ``options.refine``).
        """
        arr = self._load(image, self.options.channels, "image", self.options.limits)
        rois = check_boxes(roi_boxes, arr.shape, self.options.limits, "roi_boxes", kind="roi").boxes
        if not len(rois):
            return []
        if refine is None:
            refine = self.options.refine
        elif refine not in REFINE_MODES:
            raise InputError(f"refine must be one of {REFINE_MODES}, got {refine!r}")
        index = np.zeros(len(rois), dtype=np.int64)
        params, landmarks, spread = self._regress([arr], index, rois, refine)
        if boxes is None:
            boxes = landmark_boxes(landmarks)
        if scores is None:
            scores = np.ones(len(rois), np.float32)
        return self._make_faces(params, landmarks, rois, np.asarray(boxes, np.float32),
                                np.asarray(scores, np.float32), index, dense, None, spread, refine)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _load(image, channels: str, source: str = "image", limits: InputLimits | None = None) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image, limits=limits)
        return to_bgr_uint8(image, source, rgb=channels == "rgb")

    def _regress(self, arrays, image_index, rois, refine: str = "none"):
        """Crop, regress and reconstruct 68 landmarks for faces sorted by image; with ``refine``,
        every pass of every face in one batch, combined (also returns the passes' spread)."""
        transforms = refine_transforms(refine)
        if len(transforms) > 1:
            refined = regress_refined(self.regressor, self.morphable_model, arrays, image_index, rois, transforms)
            return refined.params, refined.landmarks, refined.uncertainty
        # sorted(set()) rather than np.unique, whose first call imports numpy.ma (~0.05 s of start-up)
        images = sorted(set(image_index.tolist()))
        crops = np.concatenate([crop_faces(arrays[i], rois[image_index == i]) for i in images])
        params = self.regressor(crops)
        landmarks = model_to_image(self.morphable_model.landmarks(params), rois).astype(np.float32)
        return params, landmarks, None

    def _make_faces(self, params, landmarks, rois, boxes, scores, image_index, dense, keypoints=None,
                    spread=None, refine: str = "none") -> list[Face]:
        angles = pose_angles(params)
        confidence = None if spread is None else confidence_from_uncertainty(spread, refine)
        vertices = None
        if dense:
            vertices = model_to_image(self.morphable_model.vertices(params), rois).astype(np.float32)
        faces = []
        for k in range(len(params)):
            face = Face(
                box=boxes[k].astype(np.float32),
                score=float(scores[k]),
                roi_box=rois[k].astype(np.float32),
                params=params[k].astype(np.float32),
                landmarks=landmarks[k],
                pose=Pose(*(float(a) for a in angles[k])),
                image_index=int(image_index[k]),
                keypoints5=None if keypoints is None or keypoints[k] is None else keypoints[k].astype(np.float32),
                model=self.morphable_model,
                assets=self.base_options.assets,
                uncertainty=None if spread is None else float(spread[k]),
                confidence=None if confidence is None else float(confidence[k]),
            )
            if vertices is not None:
                face.__dict__["vertices"] = vertices[k]
            faces.append(face)
        return faces


def check_boxes(boxes, shape: tuple[int, ...], limits: InputLimits = DEFAULT_LIMITS, source: str = "boxes", *,
                kind: Literal["box", "roi"] = "box") -> Detections:
    """Validate boxes given for an image of ``shape``: numbers, (K, 4) or (K, 5), finite,
    ``x2 > x1`` and ``y2 > y1``, and within ``limits.max_box_scale``: no side longer than that
    many times the image's longer side, and no corner further outside the image than that.

    ``kind="roi"`` checks roi boxes ``(sx, sy, ex, ey)`` (no scores, kept in the given order).

    Raises:
        InputError: not numbers, a wrong shape, NaN or infinite values, or an empty box.
        LimitError: a box too large or too far outside the image (it would need a crop of
            unbounded size).
    """
    try:
        raw = np.asarray(boxes)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: expected numbers of shape (K, 4) or (K, 5) ({exc})") from None
    if raw.size and raw.dtype.kind not in "iuf":
        kind_name = "text" if raw.dtype.kind in "US" else raw.dtype.name
        raise InputError(f"{source}: expected numbers of shape (K, 4) or (K, 5), got {kind_name} values")
    if kind == "roi":
        arr = raw.astype(np.float64).reshape(-1, raw.shape[-1] if raw.ndim else 1) if raw.size else np.zeros((0, 4))
        if arr.shape[1] != 4:
            raise InputError(f"{source}: expected roi boxes of shape (K, 4), got {raw.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{source}: roi boxes contain NaN or infinite values")
        detections = Detections(arr.astype(np.float32), np.ones(len(arr), np.float32))
        coords = arr
    else:
        coords = raw.astype(np.float64).reshape(-1, raw.shape[-1])[:, :4] if raw.size and raw.ndim else raw
        detections = Detections.from_array(raw, source)
    if len(detections):
        height, width = int(shape[0]), int(shape[1])
        reach = limits.max_box_scale * max(height, width)
        x1, y1, x2, y2 = (np.asarray(coords, np.float64)[:, k] for k in range(4))
        too_big = np.maximum(x2 - x1, y2 - y1) > reach
        too_far = (x1 < -reach) | (y1 < -reach) | (x2 > width + reach) | (y2 > height + reach)
        bad = np.flatnonzero(too_big | too_far)
        if bad.size:
            k = int(bad[0])
            box = np.round(np.asarray(coords)[k, :4], 1).tolist()
            raise LimitError(f"{source}: box {k} {box} is too large or too far outside the {width} x {height} image "
                             f"(at most {limits.max_box_scale:g} x its longer side, max_box_scale)")
    return detections
