"""``FaceAligner``: photo -> detected faces -> crops -> 3DMM parameters -> landmarks, pose, mesh.

One object wires a detector plug-in, a regressor and the morphable model; every face of every
image in a call goes through the network in one batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Sequence, get_args

import numpy as np

from ..assets.store import AssetsLike, AssetStore
from ..boxes import landmark_boxes
from ..detect.base import Detections, create_detector
from ..errors import InputError
from ..face import Face, Pose
from ..io.image import read_image, to_bgr_uint8
from ..morphable.frames import model_to_image
from ..morphable.model import load_morphable_model
from ..morphable.pose import pose_angles
from ..nets.registry import Regressor, create_model
from ..runtime import Backend, BaseOptions, resolve_base_options
from .confidence import confidence_from_uncertainty
from .crop import crop_faces, roi_from_box, roi_from_landmarks
from .refine import REFINE_MODES, RefineMode, refine_transforms, regress_refined

CropPolicy = Literal["box", "landmarks"]
Channels = Literal["bgr", "rgb"]
CROP_POLICIES: tuple[str, ...] = get_args(CropPolicy)
CHANNELS: tuple[str, ...] = get_args(Channels)
MeshVariant = Literal["noneck", "full"]


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
        refine: test-time refinement of the last pass (:mod:`ddfa.pipeline.refine`):
            ``"none"`` (one crop per face), ``"flip"`` (the crop and its mirror image) or
            ``"full"`` (plus jittered crops, 14 in all), all through the same network batch and
            combined; refined faces carry ``uncertainty`` and ``confidence``.
    """

    crop_policy: CropPolicy = "box"
    max_faces: int | None = None
    dense: bool = False
    channels: Channels = "bgr"
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
        if self.refine not in REFINE_MODES:
            raise InputError(f"refine must be one of {REFINE_MODES}, got {self.refine!r}")

    def replace(self, **overrides: Any) -> "AlignOptions":
        """A copy with the given fields changed (unknown names raise :class:`InputError`)."""
        unknown = set(overrides) - {f.name for f in fields(AlignOptions)}
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)}; expected {sorted(f.name for f in fields(AlignOptions))}")
        return replace(self, **overrides) if overrides else self


class FaceAligner:
    """3D dense face alignment of photos.

    Args:
        model: regressor name (``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``, or one added with
            :func:`~ddfa.register_model`), a checkpoint path, or a :class:`~ddfa.nets.Regressor`.
        detector: detector plug-in name (``"faceboxes"``, or one added with
            :func:`~ddfa.register_detector`), a :class:`~ddfa.detect.Detector`, a callable
            ``image -> (K, 4|5) boxes``, or None / ``"none"`` (then boxes must be given).
        base_options: the runtime context (:class:`~ddfa.BaseOptions`: assets, device, backend,
            threads), shared by the regressor and the detector.
        assets, device, backend, threads: shorthands overriding fields of ``base_options``:
            asset folder or store (None: ``$DDFA_HOME``), torch device, ``"auto"`` /
            ``"torch"`` / ``"onnxruntime"``, CPU threads of the inference engine.
        mesh: dense mesh ``"noneck"`` (3DDFA_V2, 38,365 vertices) or ``"full"`` (3DDFA, 53,215).
        options: default :class:`AlignOptions`; keyword arguments ``crop_policy``,
            ``max_faces``, ``dense``, ``channels``, ``refine`` override its fields.
        detector_options: the detector plug-in's options, as its options dataclass or a mapping
            by field name (e.g. ``{"score_threshold": 0.6}``).

    Example:
        >>> aligner = FaceAligner(assets="../shared/assets")
        >>> faces = aligner("photo.jpg")
        >>> faces[0].landmarks.shape, faces[0].pose.yaw
    """

    def __init__(
        self,
        model: str | os.PathLike | Regressor = "mb05",
        detector: Any = "faceboxes",
        *,
        base_options: BaseOptions | None = None,
        assets: AssetsLike = None,
        device: str | None = None,
        backend: Backend | None = None,
        threads: int | None = None,
        mesh: MeshVariant = "noneck",
        options: AlignOptions | None = None,
        detector_options: Any = None,
        **option_overrides: Any,
    ):
        self.base_options = resolve_base_options(base_options, assets=assets, device=device, backend=backend,
                                                 threads=threads)
        self.options = (options or AlignOptions()).replace(**option_overrides)
        if isinstance(model, Regressor):
            self.regressor = model
        else:
            self.regressor = create_model(model, base_options=self.base_options)
        self.morphable_model = load_morphable_model(self.base_options.assets, mesh)
        self.detector = create_detector(detector, base_options=self.base_options, options=detector_options)

    @property
    def assets(self) -> AssetStore:
        """The asset store (``base_options.assets``)."""
        return self.base_options.assets

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
                pixels; skips detection.
            **options: overrides of :class:`AlignOptions` fields for this call.

        Returns:
            One :class:`~ddfa.face.Face` per face, best detection score first; ``[]`` when no
            face is found.
        """
        return self.align_batch([image], None if boxes is None else [boxes], **options)[0]

    def align_batch(self, images: Sequence, boxes: Sequence | None = None, **options) -> list[list[Face]]:
        """Align every face of several images; all faces share one network batch.

        Returns:
            For each image, its list of faces (``Face.image_index`` is the image's position).
        """
        opts = self.options.replace(**options)
        if boxes is not None and len(boxes) != len(images):
            raise InputError(f"got {len(boxes)} box lists for {len(images)} images")
        arrays = [self._load(image, opts.channels, f"images[{i}]") for i, image in enumerate(images)]
        detections = [self.detect(arr) if boxes is None else Detections.from_array(boxes[i], f"boxes[{i}]")
                      for i, arr in enumerate(arrays)]
        detections = [d.top(opts.max_faces) for d in detections]
        counts = [len(d) for d in detections]
        image_index = np.repeat(np.arange(len(arrays)), counts)
        if not image_index.size:
            return [[] for _ in arrays]
        det_boxes = np.concatenate([d.boxes for d in detections])
        scores = np.concatenate([d.scores for d in detections])
        rois = roi_from_box(det_boxes)
        last = opts.crop_policy == "box"
        params, landmarks, spread = self._regress(arrays, image_index, rois, opts.refine if last else "none")
        if not last:  # landmark crop policy: the second pass is the refined one
            rois = roi_from_landmarks(landmarks)
            params, landmarks, spread = self._regress(arrays, image_index, rois, opts.refine)
        faces = self._make_faces(params, landmarks, rois, det_boxes, scores, image_index, opts.dense,
                                 spread, opts.refine)
        out: list[list[Face]] = [[] for _ in arrays]
        for face in faces:
            out[face.image_index].append(face)
        return out

    def detect(self, image, *, channels: Channels | None = None) -> Detections:
        """Run the detector on one image (path or array; ``channels`` as in :class:`AlignOptions`)."""
        if self.detector is None:
            raise InputError("this FaceAligner has no detector: pass boxes=...")
        return self.detector.detect(self._load(image, channels or self.options.channels))

    def align_rois(self, image, roi_boxes, *, dense: bool = False, boxes=None, scores=None) -> list[Face]:
        """Regress faces from given roi boxes (the tracking step of video: rois from landmarks).

        Args:
            image: path or BGR array.
            roi_boxes: (K, 4) roi boxes ``(sx, sy, ex, ey)``.
            boxes, scores: optional (K, 4) boxes and (K,) scores to store on the faces (default:
                the landmarks' bounding boxes and 1.0).
        """
        arr = self._load(image, self.options.channels)
        rois = np.asarray(roi_boxes, dtype=np.float32).reshape(-1, 4)
        if not len(rois):
            return []
        index = np.zeros(len(rois), dtype=np.int64)
        params, landmarks, spread = self._regress([arr], index, rois, self.options.refine)
        if boxes is None:
            boxes = landmark_boxes(landmarks)
        if scores is None:
            scores = np.ones(len(rois), np.float32)
        return self._make_faces(params, landmarks, rois, np.asarray(boxes, np.float32),
                                np.asarray(scores, np.float32), index, dense, spread, self.options.refine)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _load(image, channels: str, source: str = "image") -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        return to_bgr_uint8(image, source, rgb=channels == "rgb")

    def _regress(self, arrays, image_index, rois, refine: str = "none"):
        """Crop, regress and reconstruct 68 landmarks for faces sorted by image; with ``refine``,
        every pass of every face in one batch, combined (also returns the passes' spread)."""
        transforms = refine_transforms(refine)
        if len(transforms) > 1:
            refined = regress_refined(self.regressor, self.morphable_model, arrays, image_index, rois, transforms)
            return refined.params, refined.landmarks, refined.uncertainty
        crops = np.concatenate([crop_faces(arrays[i], rois[image_index == i]) for i in np.unique(image_index)])
        params = self.regressor(crops)
        landmarks = model_to_image(self.morphable_model.landmarks(params), rois).astype(np.float32)
        return params, landmarks, None

    def _make_faces(self, params, landmarks, rois, boxes, scores, image_index, dense, spread=None,
                    refine: str = "none") -> list[Face]:
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
                model=self.morphable_model,
                uncertainty=None if spread is None else float(spread[k]),
                confidence=None if confidence is None else float(confidence[k]),
            )
            if vertices is not None:
                face.__dict__["vertices"] = vertices[k]
            faces.append(face)
        return faces
