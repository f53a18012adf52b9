"""FaceBoxes as a ddfa detector plug-in (``detector="faceboxes"``).

The image is scaled to fit 720 x 1080 (never up), the network runs on the BGR image minus
the channel means, boxes are decoded from the cached anchors of that input size, and
non-maximum suppression keeps the best of overlapping boxes. Thresholds default to those of
3DDFA_V2's demo, so detections equal the original's.

On onnxruntime and OpenVINO the network runs from its converted ONNX graph (cached and verified
by :mod:`ddfa.nets.model_cache`, keyed on the weights' sha256): torch is imported only to
convert it once, or for ``backend="torch"``. On OpenVINO the uint8 image goes into the compiled
graph as it is (conversion to float, mean subtraction and layout run inside it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ...assets.safe_pickle import load_torch_checkpoint
from ...assets.store import AssetsLike
from ...boxes import FACEBOXES_ROI
from ...caching import ContentCache
from ...errors import AssetError
from ...nets.engines import choose_backend, resolve_precision
from ...runtime import Backend, BaseOptions, resolve_base_options
from ..base import Detections, register_detector
from .boxes import decode_boxes, nms, prior_boxes

if TYPE_CHECKING:  # pragma: no cover
    from .net import FaceBoxesNet

WEIGHTS = "3DDFA_V2/FaceBoxes/weights/FaceBoxesProd.pth"
BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
#: resize large photos inside OpenVINO's compiled graph (bfloat16 only; in float32 the resize is
#: always OpenCV's, so that detections equal the reference's). Off: measured on a 720p frame,
#: OpenCV's uint8 resize + the in-graph conversion took half the time of the in-graph resize
#: (``benchmarks/bench_pipeline.py`` prints both)
RESIZE_IN_GRAPH = False
#: version of the detector's ONNX export (bump when the exported graph would change)
FACEBOXES_RECIPE = 1


@dataclass(frozen=True, kw_only=True)
class FaceBoxesOptions:
    """Detection thresholds (defaults: 3DDFA_V2's demo)."""

    confidence_threshold: float = 0.05  # candidates kept before NMS
    top_k: int = 5000  # candidates kept before NMS, best first
    nms_threshold: float = 0.3  # IoU above which the weaker box is dropped
    keep_top_k: int = 750  # boxes kept after NMS
    score_threshold: float = 0.5  # final faces: score strictly above this
    max_height: int = 720  # the image is scaled down to fit max_height x max_width
    max_width: int = 1080


def detector_input_scale(height: int, width: int, max_height: int = 720, max_width: int = 1080) -> float:
    """Factor by which FaceBoxes scales an image (<= 1): fit ``max_height``, then ``max_width``."""
    scale = 1.0
    if height > max_height:
        scale = max_height / height
    if width * scale > max_width:
        scale *= max_width / (width * scale)
    return scale


def face_probability(logits: np.ndarray) -> np.ndarray:
    """(K, 2) (background, face) logits -> (K,) float32 softmax probability of a face."""
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    return (e[:, 1] / (e[:, 0] + e[:, 1])).astype(np.float32)


class FaceBoxesDetector:
    """FaceBoxes face detector.

    Args:
        assets, device, backend, threads: shorthands overriding fields of ``base_options``.
        base_options: runtime context: the asset folder holding ``FaceBoxesProd.pth``, device,
            backend (``"auto"``, ``"torch"``, ``"onnxruntime"``) and threads.
        options: :class:`FaceBoxesOptions` (default thresholds: 3DDFA_V2's demo); keyword
            overrides of its fields are accepted too.
    """

    name = "faceboxes"
    #: 3DDFA_V2's box-to-roi rule, fitted by its authors to these boxes (bit-identical crops)
    roi_mapping = FACEBOXES_ROI

    def __init__(self, assets: AssetsLike = None, *, base_options: BaseOptions | None = None,
                 device: str | None = None, backend: Backend | None = None, threads: int | None = None,
                 options: FaceBoxesOptions | None = None, **overrides):
        base = resolve_base_options(base_options, assets=assets, device=device, backend=backend, threads=threads)
        self.base_options = base
        self.options = replace(options or FaceBoxesOptions(), **overrides)
        self.backend = choose_backend(base.backend, base.device)
        self.precision = resolve_precision(base.precision, self.backend)
        self._weights_sha256 = base.assets.digest(WEIGHTS)
        self._net: FaceBoxesNet | None = None
        self._runner: Any = None
        self._local = threading.local()
        self.resize_in_graph = RESIZE_IN_GRAPH
        if self.backend == "torch":
            self.net.to(base.device)
        else:
            self._runner = self._open_runner()

    @property
    def device(self):
        import torch

        return torch.device(self.base_options.device)

    @property
    def net(self) -> FaceBoxesNet:
        """The torch module (built on first access when the engine does not need it)."""
        if self._net is None:
            from .net import FaceBoxesNet

            net = FaceBoxesNet()
            net.load_state_dict(_load_state(self.base_options.assets))
            self._net = net.eval()
        return self._net

    def _open_runner(self):
        from ...nets.engines import open_runner
        from ...nets.model_cache import converted_model
        from ...nets.openvino_backend import InputConversion

        def build() -> tuple[bytes, dict]:
            import torch

            from ...nets.onnx_backend import export_onnx

            data = export_onnx(self.net, torch.zeros(1, 3, 256, 256), None, output_names=("loc", "logits"),
                               dynamic_axes={"input": {2: "height", 3: "width"}, "loc": {1: "priors"},
                                             "logits": {1: "priors"}})
            return data, {}

        base = self.base_options
        model = converted_model("faceboxes", source_sha256=self._weights_sha256, recipe=FACEBOXES_RECIPE,
                                cache_dir=base.assets.cache_dir, build=build, describe="the FaceBoxes detector to ONNX")
        # OpenVINO: one dynamic-shape model for every photo, since the network input is the
        # photo's own size or its fit into 720 x 1080, one side of any length: a model compiled
        # per size (0.2-0.3 s each) made a folder of 40 photos of 260-449 px take 4.7-11.4 s
        # against 1.9-2.0 s on onnxruntime (f32 results are the same either way)
        return open_runner(model, self.backend, precision=self.precision, threads=base.threads,
                           uint8_input=InputConversion((float(BGR_MEAN[0]), float(BGR_MEAN[1]), float(BGR_MEAN[2]))),
                           dynamic=True)

    def _network_input(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(1, 3, h, w) float32 BGR minus the channel means, and the scale applied to the photo.

        Written plane by plane into a buffer reused per thread and input size: this costs about
        half of what the same conversion costs inside the ONNX graph or as a numpy broadcast over
        the 3-wide channel axis (measured), and no fresh 8 MB array per frame.
        """
        import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
        height, width = image.shape[:2]
        scale = detector_input_scale(height, width, self.options.max_height, self.options.max_width)
        if scale != 1.0:
            # at least one pixel: a 2 x 3000 strip would otherwise scale to 0 rows (an OpenCV assertion)
            image = cv2.resize(image, (max(1, int(scale * width)), max(1, int(scale * height))))
        shape = (1, 3) + image.shape[:2]
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or buffer.shape != shape:
            buffer = self._local.buffer = np.empty(shape, np.float32)
        for channel in range(3):
            np.subtract(image[:, :, channel], BGR_MEAN[channel], out=buffer[0, channel], dtype=np.float32)
        return buffer, scale

    def raw_outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Network outputs for one image: loc (P, 4), logits (P, 2) (background, face), and the
        scale applied to the photo."""
        import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
        runner = self._runner
        if runner is not None and runner.takes_uint8:  # OpenVINO: the uint8 photo goes in as it is
            height, width = image.shape[:2]
            scale = detector_input_scale(height, width, self.options.max_height, self.options.max_width)
            target = self._network_input_shape(image.shape, scale)
            if scale != 1.0 and not (self.resize_in_graph and self.precision == "bf16"):
                image = cv2.resize(image, target[::-1])
            resize_to = target if image.shape[:2] != target else None
            loc, logits = runner(np.ascontiguousarray(image)[None], resize_to=resize_to)
            return loc[0], logits[0], scale
        x, scale = self._network_input(image)
        if runner is not None:
            loc, logits = runner(x)
        else:
            import torch

            with torch.inference_mode():
                loc, logits = self.net(torch.from_numpy(x).to(self.device))
            loc, logits = loc.float().cpu().numpy(), logits.float().cpu().numpy()
        return loc[0], logits[0], scale

    def detect(self, image: np.ndarray) -> Detections:
        """(H, W, 3) uint8 BGR -> face boxes in image pixels, best first."""
        opts = self.options
        loc, logits, scale = self.raw_outputs(image)
        height, width = self._network_input_shape(image.shape, scale)
        # The face probability is a softmax over (background, face), monotonic in the logit
        # margin: prefilter on the margin (with slack for rounding), then apply the exact test
        # to the few rows left instead of computing the softmax of every anchor.
        margin = logits[:, 1] - logits[:, 0]
        threshold = opts.confidence_threshold
        slack_margin = np.log(threshold / (1.0 - threshold)) - 1e-3 if 0.0 < threshold < 1.0 else -np.inf
        rows = np.flatnonzero(margin > slack_margin)
        scores = face_probability(logits[rows])
        candidates = rows[scores > threshold]
        scores = scores[scores > threshold]
        if candidates.size == 0:
            return Detections.empty()
        order = np.argsort(scores)[::-1][: opts.top_k]
        candidates, cand_scores = candidates[order], scores[order]
        priors = prior_boxes(height, width)
        boxes = decode_boxes(loc[candidates], priors[candidates])
        boxes *= np.array([width, height, width, height], dtype=np.float32)
        boxes /= np.float32(scale)
        keep = nms(boxes, cand_scores, opts.nms_threshold)[: opts.keep_top_k]
        boxes, cand_scores = boxes[keep], cand_scores[keep]
        final = cand_scores > opts.score_threshold
        return Detections(np.ascontiguousarray(boxes[final]), np.ascontiguousarray(cand_scores[final]))

    @staticmethod
    def _network_input_shape(shape, scale: float) -> tuple[int, int]:
        height, width = shape[:2]
        if scale == 1.0:
            return height, width
        return max(1, int(scale * height)), max(1, int(scale * width))


_STATES: ContentCache[dict] = ContentCache("faceboxes weights")


def _load_state(store) -> dict:
    """The checked FaceBoxes state dict (cached on the file's sha256)."""
    return _STATES.get_or_build(store.digest(WEIGHTS), lambda: _read_state(store.path(WEIGHTS)))


def _read_state(path) -> dict:
    from .net import FaceBoxesNet

    state = load_torch_checkpoint(path)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    try:
        FaceBoxesNet().load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise AssetError(f"{path}: not a FaceBoxes checkpoint ({str(exc).splitlines()[0]})") from None
    return state


@register_detector("faceboxes", options=FaceBoxesOptions,
                   description="FaceBoxes (3DDFA_V2's detector; bit-identical to the original)")
def _faceboxes_factory(base_options: BaseOptions, options: FaceBoxesOptions | None) -> FaceBoxesDetector:
    return FaceBoxesDetector(base_options=base_options, options=options)
