"""``FaceAligner``: photo -> detected faces -> crops -> 3DMM parameters -> landmarks, pose, mesh.

One object wires a detector plug-in, a regressor and the morphable model; every face of every
image in a call goes through the network in one batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..assets.store import AssetStore, resolve_assets
from ..detect.base import Detections, create_detector
from ..errors import InputError
from ..face import Face, Pose
from ..io.image import read_image, to_bgr_uint8
from ..morphable.frames import model_to_image
from ..morphable.model import load_morphable_model
from ..morphable.pose import pose_angles
from ..nets.registry import create_model
from .crop import crop_faces, roi_from_box, roi_from_landmarks

CROP_POLICIES = ("box", "landmarks")


@dataclass(frozen=True)
class AlignOptions:
    """Per-call options of :class:`FaceAligner` (each can be overridden per call).

    Attributes:
        crop_policy: ``"box"``: crop from the detection box (one network pass); ``"landmarks"``:
            two-step refinement, a second pass on the crop derived from the first pass's
            landmarks (3DDFA_V2's landmark crop policy).
        max_faces: keep at most this many faces per image, best score first (None: all).
        dense: reconstruct the dense mesh of every face eagerly (it is otherwise computed on
            first access of :attr:`Face.vertices`).
    """

    crop_policy: str = "box"
    max_faces: int | None = None
    dense: bool = False

    def __post_init__(self):
        if self.crop_policy not in CROP_POLICIES:
            raise InputError(f"crop_policy must be one of {CROP_POLICIES}, got {self.crop_policy!r}")
        if self.max_faces is not None and int(self.max_faces) < 0:
            raise InputError(f"max_faces must be >= 0, got {self.max_faces}")


class FaceAligner:
    """3D dense face alignment of photos.

    Args:
        model: regressor name (``"mb05"``, ``"mb1"``, ``"3ddfa-v1"``) or checkpoint path.
        detector: detector plug-in name (``"faceboxes"``), a :class:`~ddfa.detect.Detector`,
            a callable ``image -> (K, 4|5) boxes``, or None (then boxes must be given).
        assets: asset directory or :class:`~ddfa.assets.AssetStore` (None: ``$DDFA_HOME``).
        device: torch device (``"cpu"``, ``"cuda"``, ...).
        backend: ``"auto"`` (onnxruntime on CPU when installed), ``"torch"``, ``"onnxruntime"``.
        mesh: dense mesh ``"noneck"`` (3DDFA_V2, 38,365 vertices) or ``"full"`` (3DDFA, 53,215).
        options: default :class:`AlignOptions`; keyword arguments ``crop_policy``,
            ``max_faces``, ``dense`` override its fields.
        threads: CPU threads of onnxruntime sessions (None: all cores).

    Example:
        >>> aligner = FaceAligner(assets="../shared/assets")
        >>> faces = aligner("photo.jpg")
        >>> faces[0].landmarks.shape, faces[0].pose.yaw
    """

    def __init__(
        self,
        model: str | os.PathLike = "mb05",
        detector="faceboxes",
        assets: AssetStore | str | os.PathLike | None = None,
        device: str = "cpu",
        backend: str = "auto",
        mesh: str = "noneck",
        options: AlignOptions | None = None,
        threads: int | None = None,
        **option_overrides,
    ):
        self.assets = resolve_assets(assets)
        self.options = _merge(options or AlignOptions(), option_overrides)
        self.regressor = create_model(model, assets=self.assets, device=device, backend=backend, threads=threads)
        self.morphable_model = load_morphable_model(self.assets, mesh)
        if isinstance(detector, str) and detector != "none":
            self.detector = create_detector(detector, assets=self.assets, device=device, backend=backend,
                                            threads=threads)
        else:
            self.detector = create_detector(detector)
        self.device = device

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
        opts = _merge(self.options, options)
        if boxes is not None and len(boxes) != len(images):
            raise InputError(f"got {len(boxes)} box lists for {len(images)} images")
        arrays = [self._load(image) for image in images]
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
        params, landmarks = self._regress(arrays, image_index, rois)
        if opts.crop_policy == "landmarks":
            rois = roi_from_landmarks(landmarks)
            params, landmarks = self._regress(arrays, image_index, rois)
        faces = self._make_faces(params, landmarks, rois, det_boxes, scores, image_index, opts.dense)
        out: list[list[Face]] = [[] for _ in arrays]
        for face in faces:
            out[face.image_index].append(face)
        return out

    def detect(self, image) -> Detections:
        """Run the detector on one image (path or array)."""
        if self.detector is None:
            raise InputError("this FaceAligner has no detector: pass boxes=...")
        return self.detector.detect(self._load(image))

    def align_rois(self, image, roi_boxes, *, dense: bool = False, boxes=None, scores=None) -> list[Face]:
        """Regress faces from given roi boxes (the tracking step of video: rois from landmarks).

        Args:
            image: path or BGR array.
            roi_boxes: (K, 4) roi boxes ``(sx, sy, ex, ey)``.
            boxes, scores: optional (K, 4) boxes and (K,) scores to store on the faces (default:
                the landmarks' bounding boxes and 1.0).
        """
        arr = self._load(image)
        rois = np.asarray(roi_boxes, dtype=np.float32).reshape(-1, 4)
        if not len(rois):
            return []
        index = np.zeros(len(rois), dtype=np.int64)
        params, landmarks = self._regress([arr], index, rois)
        if boxes is None:
            boxes = np.concatenate([landmarks[:, :, :2].min(axis=1), landmarks[:, :, :2].max(axis=1)], axis=1)
        if scores is None:
            scores = np.ones(len(rois), np.float32)
        return self._make_faces(params, landmarks, rois, np.asarray(boxes, np.float32),
                                np.asarray(scores, np.float32), index, dense)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _load(image) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        return to_bgr_uint8(image, "image")

    def _regress(self, arrays, image_index, rois):
        """Crop, regress and reconstruct 68 landmarks for faces sorted by image."""
        crops = np.concatenate([crop_faces(arrays[i], rois[image_index == i]) for i in np.unique(image_index)])
        params = self.regressor(crops)
        landmarks = model_to_image(self.morphable_model.landmarks(params), rois).astype(np.float32)
        return params, landmarks

    def _make_faces(self, params, landmarks, rois, boxes, scores, image_index, dense) -> list[Face]:
        angles = pose_angles(params)
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
            )
            if vertices is not None:
                face.__dict__["vertices"] = vertices[k]
            faces.append(face)
        return faces


def _merge(options: AlignOptions, overrides: dict) -> AlignOptions:
    unknown = set(overrides) - set(AlignOptions.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown option(s) {sorted(unknown)}; expected {sorted(AlignOptions.__dataclass_fields__)}")
    if not overrides:
        return options
    fields = {name: getattr(options, name) for name in AlignOptions.__dataclass_fields__}
    fields.update(overrides)
    return AlignOptions(**fields)
