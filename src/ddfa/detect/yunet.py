"""YuNet (Wu, Peng and Yu, *YuNet: a tiny millisecond-level face detector*, MIR 2023) as a ddfa
detector plug-in (``detector="yunet"``, the default).

The network: the ONNX export with a dynamic ``N x 3 x H x W`` input (``H``, ``W`` multiples of
32) from libfacedetection.train (``yunet_s_dynamic.onnx``, weights identical to OpenCV Zoo's
``face_detection_yunet_2023mar.onnx``), run by onnxruntime: on this project's CPUs it is 2-4x
faster than ``cv2.FaceDetectorYN`` on the same image (``benchmarks/bench_yunet_engines.py``).
Input: the BGR image as float32 0-255, no normalisation.

Decoding (anchor-free, one prediction per cell of the stride-8, 16 and 32 grids): for the cell
in row ``r``, column ``c`` of stride ``s``, with outputs ``cls``, ``obj``, ``bbox = (dx, dy,
dw, dh)`` and ``kps = (x_k, y_k) x 5``:

* score = ``sqrt(clip(cls, 0, 1) * clip(obj, 0, 1))``;
* centre = ``((c + dx) s, (r + dy) s)``, size = ``(exp(dw) s, exp(dh) s)``;
* point k = ``((c + x_k) s, (r + y_k) s)``, in the order of
  :data:`~ddfa.detect.base.KEYPOINT_NAMES` (right eye, left eye, nose tip, right and left
  mouth corners, the person's right and left).

This equals ``cv2.FaceDetectorYN``'s decoding to float32 rounding (tested). Then the shared
scale policy (:mod:`ddfa.detect.scale`) and NMS (:func:`ddfa.boxes.nms`) apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..assets.store import AssetsLike
from ..boxes import RoiMapping
from ..nets.engines import choose_backend, open_runner, resolve_precision
from ..nets.model_cache import asset_model
from ..nets.openvino_backend import InputConversion
from ..runtime import BaseOptions, resolve_base_options
from .base import register_detector
from .single_shot import SingleShotDetector, SingleShotOptions, top_candidates

MODEL = "libfacedetection.train/onnx/yunet_s_dynamic.onnx"
STRIDES: tuple[int, ...] = (8, 16, 32)

#: box -> roi for YuNet boxes, fitted on the 1700 AFLW2000-3D development photos by
#: ``experiments/fit_roi_mapping.py`` (target: the landmark-crop roi of the ground-truth landmarks)
YUNET_ROI = RoiMapping(1.2804, 0.0016, 0.1304)


@dataclass(frozen=True, kw_only=True)
class YuNetOptions(SingleShotOptions):
    """YuNet thresholds and scale policy (see :class:`~ddfa.detect.single_shot.SingleShotOptions`).

    ``score_threshold`` 0.3 (OpenCV's demo uses 0.9): chosen on the development photos, where it
    finds every annotated face past 60° yaw; 0.5 misses 2% of them.
    """

    score_threshold: float = 0.3


class YuNetDetector(SingleShotDetector):
    """YuNet face detector: boxes, scores and 5 facial points.

    Args:
        assets: shorthand overriding ``base_options.assets``.
        base_options: runtime context (assets, threads, backend and precision). YuNet ships as
            ONNX and runs on the CPU: on OpenVINO (uint8 input converted inside the compiled
            graph, one compiled model per input shape, bf16 where the CPU has it) or onnxruntime;
            ``backend="torch"`` and GPU devices run it on onnxruntime.
        options: :class:`YuNetOptions`; keyword overrides of its fields are accepted too.
    """

    name = "yunet"
    roi_mapping = YUNET_ROI
    stride = 32
    #: measured: 95% of the development faces found at 16 px at the network input, 98% at 20 px
    min_input_face = 20.0

    def __init__(self, assets: AssetsLike = None, *, base_options: BaseOptions | None = None,
                 options: YuNetOptions | None = None, threads: int | None = None, **overrides):
        base = resolve_base_options(base_options, assets=assets, threads=threads)
        super().__init__(self.merge_options(YuNetOptions, options, overrides))
        engine = "onnxruntime" if base.backend == "torch" else choose_backend(base.backend, "cpu")
        self.backend = engine
        self.precision = resolve_precision(base.precision, engine)
        self.runner = open_runner(asset_model(base.assets, MODEL, "yunet"), engine, precision=self.precision,
                                  threads=base.threads, uint8_input=InputConversion((0.0, 0.0, 0.0)),
                                  # OpenVINO: a compiled model per input shape for photos down-scaled
                                  # to the working resolution and for tiles (a few shapes); smaller
                                  # photos, of any size, share one dynamic-shape model (`ddfa align`
                                  # on 200 photos of 260-449 px: 21.7-26.0 s compiling one model
                                  # per size, now 7.8-8.1 s; README, "Photos of many sizes")
                                  dynamic=True, static_from_side=self.options.det_size)
        self._names: list[str] | None = None

    @property
    def _outputs(self) -> list[str]:
        """The network's output names (asked for on first use: an OpenVINO network whose compiled
        blob is in the cache is then never read from its ONNX graph)."""
        if self._names is None:
            self._names = self.runner.output_names
        return self._names

    def _network_input(self, batch: np.ndarray) -> np.ndarray:
        if self.runner.takes_uint8:  # OpenVINO: the uint8 tiles go in as they are
            return np.ascontiguousarray(batch)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        return self.runner(x)

    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Named network outputs (``cls_8``, ``obj_8``, ``bbox_8``, ``kps_8``, ... ) of an
        (N, H, W, 3) uint8 BGR batch."""
        return dict(zip(self._outputs, self._forward(self._network_input(batch))))

    def _decode(self, outputs, input_size):
        named = dict(zip(self._outputs, outputs))
        height, width = input_size
        per_stride = []
        for s in STRIDES:
            cols = width // s
            score = np.sqrt(np.clip(named[f"cls_{s}"][..., 0], 0, 1) * np.clip(named[f"obj_{s}"][..., 0], 0, 1))
            per_stride.append((s, cols, score, named[f"bbox_{s}"], named[f"kps_{s}"]))
        batch = per_stride[0][2].shape[0]
        results = []
        for n in range(batch):
            scores = np.concatenate([p[2][n] for p in per_stride])
            rows = top_candidates(scores, self.options.score_threshold, self.options.top_k)
            boxes = np.empty((len(rows), 4), np.float32)
            points = np.empty((len(rows), 5, 2), np.float32)
            offset = 0
            for s, cols, score, bbox, kps in per_stride:
                count = score.shape[1]
                sel = (rows >= offset) & (rows < offset + count)
                cell = rows[sel] - offset
                offset += count
                if not cell.size:
                    continue
                r, c = np.divmod(cell, cols)
                grid = np.stack([c, r], axis=1).astype(np.float32)
                b = bbox[n, cell]
                centre = (grid + b[:, :2]) * np.float32(s)
                size = np.exp(b[:, 2:]) * np.float32(s)
                boxes[sel] = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
                points[sel] = (grid[:, None, :] + kps[n, cell].reshape(-1, 5, 2)) * np.float32(s)
            results.append((boxes, scores[rows].astype(np.float32), points))
        return results


@register_detector("yunet", options=YuNetOptions,
                   description="YuNet (2023, MIT): boxes + 5 points, any photo size (the default)")
def _yunet_factory(base_options: BaseOptions, options: YuNetOptions | None) -> YuNetDetector:
    return YuNetDetector(base_options=base_options, options=options)
