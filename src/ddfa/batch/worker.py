"""The work of one batch of images, shared by both engines.

* :func:`align_paths`: decode, detect and regress a batch in one process (the local engine's
  worker and the Ray engine's CPU actor): every face of the batch goes through the network in one
  call (:meth:`ddfa.FaceAligner.align_batch`).
* :func:`detect_paths` + :func:`regress_items`: the same split in two, so that detection can run
  in a CPU actor pool and regression in GPU actors (``ddfa batch --engine ray --device cuda``);
  the detections travel as :class:`~ddfa.detect.Detections` and are fed back to ``align_batch``,
  so both paths compute the same rows as ``ddfa align``.

An image that cannot be read or processed becomes a failed :class:`~ddfa.io.batch.ImageResult`;
the rest of the batch goes on.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..detect.base import DEFAULT_DETECTOR
from ..errors import InputError
from ..io.batch import ImageResult
from .inputs import load_image


@dataclass(frozen=True, kw_only=True)
class AlignerSpec:
    """A picklable recipe of the :class:`~ddfa.FaceAligner` every worker builds.

    Attributes:
        model: regressor name or checkpoint path (as ``--model``).
        detector: detector plug-in name (as ``--detector``; default: the facade's, ``"yunet"``).
        detector_options: the plug-in's options by name.
        assets: asset folder (None: ``$DDFA_HOME`` of each worker).
        device: torch device of the regressor (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        backend: an inference engine (``"auto"``, ``"torch"``, ``"onnxruntime"``, ``"openvino"``).
        precision: number format of the networks (as ``--precision``; it decides the rows).
        threads: CPU threads of each worker's inference engine (None: the engine decides from
            the cores it is given).
        crop_policy: ``"box"`` or ``"landmarks"``.
        max_faces: keep at most this many faces per image (None: all).
        refine: test-time refinement ``"none"``, ``"flip"`` or ``"full"`` (as ``--refine``;
            refined faces fill the ``uncertainty`` and ``confidence`` columns).
    """

    model: str = "mb05"
    detector: str = DEFAULT_DETECTOR
    detector_options: dict[str, Any] = field(default_factory=dict)
    assets: str | None = None
    device: str = "cpu"
    backend: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    crop_policy: str = "box"
    max_faces: int | None = None
    refine: str = "none"

    def align_options(self):
        """The :class:`~ddfa.AlignOptions` of the recipe (checks its values)."""
        from ..pipeline import AlignOptions

        return AlignOptions(crop_policy=self.crop_policy, max_faces=self.max_faces,  # type: ignore[arg-type]
                            refine=self.refine)  # type: ignore[arg-type]

    def base_options(self, *, device: str | None = None):
        from ..runtime import BaseOptions

        return BaseOptions(assets=self.assets, device=device or self.device, backend=self.backend,  # type: ignore[arg-type]
                           threads=self.threads, precision=self.precision)  # type: ignore[arg-type]

    def build(self, *, detector: bool = True, device: str | None = None):
        """The :class:`~ddfa.FaceAligner` (without a detector when ``detector`` is False)."""
        from ..pipeline import FaceAligner

        options = self.align_options()
        return FaceAligner(self.model, self.detector if detector else None,
                           base_options=self.base_options(device=device), options=options,
                           detector_options=self.detector_options if detector and self.detector_options else None)

    def build_detector(self):
        """The detector alone, on the CPU (what the detection actors need)."""
        from ..detect.base import create_detector

        return create_detector(self.detector, base_options=self.base_options(device="cpu"),
                               options=self.detector_options or None)

    def check(self) -> None:
        """Validate the options without loading any model (the driver's fail-fast check).

        Raises:
            InputError: an unknown model (neither registered nor a file) or detector, a bad
                detector option, crop policy, face limit, device, backend or thread count.
        """
        from ..detect.base import detector_spec
        from ..nets.registry import list_models

        if self.model not in list_models() and not Path(self.model).expanduser().is_file():
            raise InputError(f"unknown model {self.model!r}: expected one of {', '.join(list_models())} "
                             "or a checkpoint file")
        detector_spec(self.detector).make_options(self.detector_options or None)
        self.align_options()
        self.base_options()

    def with_threads(self, threads: int | None) -> AlignerSpec:
        return self if self.threads is not None else replace(self, threads=threads)

    def result_options(self) -> dict[str, Any]:
        """The options that decide the rows (a resumed run must use the same)."""
        keep = ("model", "detector", "detector_options", "precision", "crop_policy", "max_faces")
        options = {k: v for k, v in asdict(self).items() if k in keep}
        if self.refine != "none":  # (absent without refinement: earlier folders stay resumable)
            options["refine"] = self.refine
        return options


def set_cpu_threads(threads: int | None) -> None:
    """Give OpenCV and torch of this process ``threads`` threads (a worker of a pool).

    torch is not imported for this (a worker on onnxruntime or OpenVINO never loads it: 1-2 s
    and ~300 MB per worker): when it is loaded its threads are set, else ``OMP_NUM_THREADS``
    tells it when it loads."""
    if not threads:
        return
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def _load_all(paths: Sequence[str]) -> tuple[list[str], list[np.ndarray], dict[str, ImageResult]]:
    keys, images, failed = [], [], {}
    for key in paths:
        try:
            images.append(load_image(key))
            keys.append(key)
        except Exception as exc:  # any decoder failure is this image's failure
            failed[key] = ImageResult.failure(key, exc)
    return keys, images, failed


def _align_each(aligner, keys: list[str], images: list[np.ndarray], boxes: list | None) -> dict[str, ImageResult]:
    """``align_batch`` on all images; when it raises, image by image to find the one at fault."""
    if not keys:
        return {}
    try:
        faces = aligner.align_batch(images, boxes)
        return {key: ImageResult.from_faces(key, image.shape, image_faces)
                for key, image, image_faces in zip(keys, images, faces)}
    except Exception as exc:
        if len(keys) == 1:
            return {keys[0]: ImageResult.failure(keys[0], exc)}
    out: dict[str, ImageResult] = {}
    for i, key in enumerate(keys):
        out.update(_align_each(aligner, [key], [images[i]], None if boxes is None else [boxes[i]]))
    return out


def _charge(results: list[ImageResult], start: float, carried: Sequence[float] | None = None) -> list[ImageResult]:
    """Share the CPU seconds this process spent since ``start`` among ``results`` (plus what an
    earlier stage ``carried`` for each), in :attr:`ImageResult.cpu_seconds`."""
    share = (time.process_time() - start) / max(len(results), 1)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    for i, result in enumerate(results):
        result.cpu_seconds = share + (carried[i] if carried is not None else 0.0)
        result.worker = worker
    return results


def align_paths(aligner, paths: Sequence[str]) -> list[ImageResult]:
    """Decode, detect and regress a batch of images (one network batch); results in input order."""
    start = time.process_time()
    keys, images, failed = _load_all(paths)
    done = {**failed, **_align_each(aligner, keys, images, None)}
    return _charge([done[key] for key in paths], start)


def detect_paths(detector, paths: Sequence[str]) -> list[tuple[str, Any, float]]:
    """Decode and detect: for each image ``(key, (image, detections), cpu_seconds)``, or
    ``(key, ImageResult, cpu_seconds)`` when it failed (image: (H, W, 3) uint8 BGR; detections:
    :class:`~ddfa.detect.Detections`; cpu_seconds: this stage's CPU time per image)."""
    start = time.process_time()
    keys, images, failed = _load_all(paths)
    found: dict[str, Any] = {}
    for key, image in zip(keys, images):
        try:
            found[key] = (image, detector.detect(image).with_roi_mapping(getattr(detector, "roi_mapping", None)))
        except Exception as exc:
            found[key] = ImageResult.failure(key, exc)
    share = (time.process_time() - start) / max(len(paths), 1)
    return [(key, failed.get(key, found.get(key)), share) for key in paths]


def regress_items(aligner, items: Sequence[tuple[str, Any, float]]) -> list[ImageResult]:
    """Regress the detected faces of :func:`detect_paths`'s output (one network batch)."""
    start = time.process_time()
    todo = [(k, v) for k, v, _ in items if not isinstance(v, ImageResult)]
    done = {k: v for k, v, _ in items if isinstance(v, ImageResult)}
    done.update(_align_each(aligner, [k for k, _ in todo], [v[0] for _, v in todo], [v[1] for _, v in todo]))
    return _charge([done[key] for key, _, _ in items], start, [cpu for _, _, cpu in items])


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


__all__ = ["AlignerSpec", "align_paths", "cpu_count", "detect_paths", "regress_items", "set_cpu_threads"]
