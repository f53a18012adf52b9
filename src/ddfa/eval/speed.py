"""Speed: per-stage latency of the photo pipeline, with torch eager as the in-run baseline.

Stages (the frame is ``3DDFA_V2/examples/inputs/trump_hillary.jpg``, 1536x689, resized with
``cv2.resize`` (bilinear, aspect ratio not kept) to 1280x720: a 720p frame with two faces):

* **detection**: FaceBoxes on the whole frame (FaceBoxes itself scales it to fit 720x1080),
  decoding and NMS included; ms per frame.
* **regression, batch 1** and **batch 128**: crops (uint8 BGR) -> de-whitened 62 params,
  preprocessing included; ms per face (batch 128 = 64 copies of the two face crops).
* **dense reconstruction**: the 38,365-vertex mesh of one face in image pixels (basis product,
  pose, crop -> image); ms per face. ddfa's path is numpy; torch eager is the baseline.
* **rendering**: ``ddfa.render.render_shaded(frame, faces)`` (both faces, shaded mesh over the
  frame); ms per frame, CPU only.

Configurations: CPU with 1 thread and with all threads (``torch.set_num_threads`` for torch,
``threads=`` for onnxruntime sessions), and CUDA (torch) when available. numpy's BLAS runs as
the process has it (one thread in the ``ddfa`` command, ``OPENBLAS_NUM_THREADS``). Every figure is the median of
``repeats`` timed runs after warm-up runs; ratios are the torch eager time of the same stage and
configuration divided by the engine's time (> 1: faster than torch eager).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

import cv2
import numpy as np
import torch

from ..assets.store import AssetsLike, AssetStore, resolve_assets
from ..errors import DdfaError, InputError
from ..io.image import read_image

FRAME_IMAGE = "3DDFA_V2/examples/inputs/trump_hillary.jpg"
FRAME_SIZE = (1280, 720)  # width, height
BATCH = 128

SpeedStage = Literal["detection", "regression_b1", "regression_b128", "dense", "render"]
#: every stage, in table order
STAGES: tuple[SpeedStage, ...] = get_args(SpeedStage)
#: the baseline engine of every ratio
BASELINE = "torch eager"


@dataclass(frozen=True, kw_only=True)
class Config:
    """One hardware configuration: label, torch device, CPU threads (None on CUDA)."""

    label: str
    device: str
    threads: int | None

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def default_configs(cuda: bool | None = None) -> list[Config]:
    """CPU 1 thread, CPU all threads, and CUDA when available (``cuda=None``: auto)."""
    n = os.cpu_count() or 1
    configs = [Config(label="CPU 1 thread", device="cpu", threads=1)]
    if n > 1:
        configs.append(Config(label=f"CPU {n} threads", device="cpu", threads=n))
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        configs.append(Config(label="CUDA " + torch.cuda.get_device_name(0), device="cuda", threads=None))
    return configs


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 2, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def load_frame(assets: AssetsLike = None) -> np.ndarray:
    """The 1280x720 two-face test frame (BGR uint8) from an asset store, folder or None."""
    image = read_image(resolve_assets(assets).path(FRAME_IMAGE))
    return cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True, kw_only=True)
class _Scene:
    """What every stage works on, found once with ddfa's default path: the frame, its faces,
    their (2, 120, 120, 3) crops and the crops repeated to a batch of 128, the first face's
    (1, 62) parameters and (1, 4) roi box, and the no-neck morphable model."""

    store: AssetStore
    model: str
    frame: np.ndarray
    faces: Sequence[Any]
    crops: np.ndarray
    crops128: np.ndarray
    params1: np.ndarray
    roi1: np.ndarray
    morph: Any


@dataclass(frozen=True, kw_only=True)
class _Timer:
    """Times the stages of one configuration: ``repeats`` runs, CUDA synchronised on CUDA."""

    cfg: Config
    repeats: int
    has_ort: bool
    has_openvino: bool = False

    def ms(self, fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
        return time_ms(fn, repeats, warmup=warmup, sync=torch.cuda.synchronize if self.cfg.cuda else None)

    def row(self, stage: SpeedStage, label: str, unit: str, engine: str, ms: float) -> dict[str, Any]:
        return {"stage": stage, "label": label, "unit": unit, "engine": engine, "config": self.cfg.label, "ms": ms}

    @property
    def cpu_onnxruntime(self) -> bool:
        """Whether onnxruntime runs in this configuration (CPU only, when installed)."""
        return self.has_ort and not self.cfg.cuda

    @property
    def cpu_engines(self) -> list[str]:
        """The CPU engines besides torch timed in this configuration (CPU only, when installed)."""
        if self.cfg.cuda:
            return []
        return (["onnxruntime"] if self.has_ort else []) + (["openvino"] if self.has_openvino else [])


def _scene(store: AssetStore, model: str) -> _Scene:
    from ..morphable.model import load_morphable_model
    from ..pipeline import FaceAligner
    from ..pipeline.crop import crop_faces, roi_from_box

    frame = load_frame(store)
    faces = FaceAligner(model, assets=store, detector="faceboxes")(frame)
    if not faces:
        raise DdfaError(f"speed benchmark: no face found in the test frame {FRAME_IMAGE}")
    crops = crop_faces(frame, roi_from_box(np.stack([f.box for f in faces])))
    return _Scene(store=store, model=model, frame=frame, faces=faces, crops=crops,
                  crops128=np.ascontiguousarray(np.resize(crops, (BATCH,) + crops.shape[1:])),
                  params1=faces[0].params[None].astype(np.float32), roi1=faces[0].roi_box[None],
                  morph=load_morphable_model(store, "noneck"))


def _time_detection(scene: _Scene, timer: _Timer) -> list[dict[str, Any]]:
    from ..detect.faceboxes.detector import FaceBoxesDetector

    label = f"detection ({FRAME_SIZE[0]}x{FRAME_SIZE[1]}, {len(scene.faces)} faces)"
    detectors = [(BASELINE, FaceBoxesDetector(assets=scene.store, device=timer.cfg.device, backend="torch"))]
    for engine in timer.cpu_engines:  # each in its "auto" precision (OpenVINO: bf16 where the CPU has it)
        detectors.append((engine, FaceBoxesDetector(assets=scene.store, backend=engine,  # type: ignore[arg-type]
                                                    threads=timer.cfg.threads)))
    rows = []
    for engine, detector in detectors:
        ms = timer.ms(partial(detector.detect, scene.frame), timer.repeats)
        rows.append(timer.row("detection", label, "per frame", engine, ms))
    return rows


def _time_regression(scene: _Scene, timer: _Timer, stages: Sequence[str]) -> list[dict[str, Any]]:
    from ..nets.registry import create_model

    cfg = timer.cfg
    regressors = [(BASELINE, create_model(scene.model, assets=scene.store, device=cfg.device, backend="torch"))]
    for engine in timer.cpu_engines:
        regressors.append((engine, create_model(scene.model, assets=scene.store, backend=engine,  # type: ignore[arg-type]
                                                threads=cfg.threads)))
    rows = []
    for engine, reg in regressors:
        if "regression_b1" in stages:
            ms = timer.ms(partial(reg, scene.crops[:1]), 3 * timer.repeats, warmup=3)
            rows.append(timer.row("regression_b1", "regression, batch 1", "per face", engine, ms))
        if "regression_b128" in stages:
            ms = timer.ms(partial(reg, scene.crops128, batch_size=BATCH), max(2, timer.repeats // 3), warmup=1)
            rows.append(timer.row("regression_b128", f"regression, batch {BATCH}", "per face", engine, ms / BATCH))
    return rows


def _time_dense(scene: _Scene, timer: _Timer) -> list[dict[str, Any]]:
    from ..morphable.frames import model_to_image

    device = timer.cfg.device
    label = f"dense reconstruction ({scene.morph.num_vertices:,} vertices)"
    tmodel = scene.morph.to_torch(device=device)
    tparams = torch.as_tensor(scene.params1, device=device)
    troi = torch.as_tensor(scene.roi1, dtype=torch.float32, device=device)

    def dense_torch() -> torch.Tensor:
        with torch.inference_mode():
            return model_to_image(tmodel(tparams, dense=True), troi)

    rows = [timer.row("dense", label, "per face", BASELINE, timer.ms(dense_torch, 2 * timer.repeats))]
    if not timer.cfg.cuda:
        ms = timer.ms(lambda: model_to_image(scene.morph.vertices(scene.params1), scene.roi1), 2 * timer.repeats)
        rows.append(timer.row("dense", label, "per face", "numpy", ms))
    return rows


def _time_render(scene: _Scene, timer: _Timer) -> list[dict[str, Any]]:
    from ..render import render_shaded

    label = f"rendering ({len(scene.faces)} faces, shaded)"
    ms = timer.ms(lambda: render_shaded(scene.frame, scene.faces), timer.repeats)
    return [timer.row("render", label, "per frame", "ddfa.render", ms)]


def _time_config(scene: _Scene, timer: _Timer, stages: Sequence[str]) -> list[dict[str, Any]]:
    """Every requested stage in one configuration (torch threads set by the caller)."""
    rows = []
    if "detection" in stages:
        rows += _time_detection(scene, timer)
    if any(stage.startswith("regression") for stage in stages):
        rows += _time_regression(scene, timer, stages)
    if "dense" in stages:
        rows += _time_dense(scene, timer)
    if "render" in stages and not timer.cfg.cuda:
        rows += _time_render(scene, timer)
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """``ratio_vs_torch``: the torch eager time of the same stage and configuration / the row's."""
    base = {(r["stage"], r["config"]): r["ms"] for r in rows if r["engine"] == BASELINE}
    for r in rows:
        b = base.get((r["stage"], r["config"]))
        r["ratio_vs_torch"] = (b / r["ms"]) if (b and r["ms"]) else None


def _protocol(scene: _Scene, repeats: int) -> dict[str, Any]:
    return {
        "frame": f"{FRAME_IMAGE} resized with cv2.resize (bilinear, aspect not kept) to "
                 f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}; {len(scene.faces)} faces",
        "model": scene.model,
        "statistic": f"median of {repeats} timed runs (regression batch 1: {3 * repeats}, batch {BATCH}: "
                     f"{max(2, repeats // 3)}, dense: {2 * repeats}) after warm-up runs",
        "units": "ms per frame (detection, rendering) or per face (regression, dense reconstruction)",
        "ratio": "torch eager ms / engine ms, same stage and configuration (> 1: faster than torch eager)",
        "threads": "torch.set_num_threads(n) for torch; onnxruntime intra-op threads = n; OpenVINO "
                   "INFERENCE_NUM_THREADS = n; numpy's BLAS as the process has it (one thread in the ddfa "
                   "command, OPENBLAS_NUM_THREADS)",
        "precision": "torch and onnxruntime float32; OpenVINO its auto precision (bf16 on CPUs with AMX or "
                     "AVX-512-BF16, else f32)",
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def run_speed(assets: AssetsLike = None, *, model: str = "mb05", repeats: int = 10,
              configs: Sequence[Config] | None = None, stages: Sequence[SpeedStage] | None = None,
              log: Callable[[str], object] | None = None) -> dict[str, Any]:
    """Time every stage in every configuration.

    Args:
        assets: asset directory or store.
        model: regressor name or checkpoint.
        repeats: timed runs per figure (batch 128: ``max(2, repeats // 3)``).
        configs: hardware configurations (default :func:`default_configs`).
        stages: subset of :data:`STAGES` (default: all).
        log: optional ``print``-like callable for progress lines.

    Returns:
        ``{"protocol": {...}, "configs": [labels], "rows": [{"stage", "label", "unit", "engine",
        "config", "ms", "ratio_vs_torch"}...]}``.

    Raises:
        InputError: an unknown stage.
    """
    from ..nets.engines import onnxruntime_available, openvino_available

    stages = tuple(stages or STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise InputError(f"unknown speed stage(s) {', '.join(unknown)}; expected some of {', '.join(STAGES)}")
    configs = list(configs or default_configs())
    scene = _scene(resolve_assets(assets), model)
    has_ort, has_openvino = onnxruntime_available(), openvino_available()
    rows: list[dict[str, Any]] = []
    saved_threads = torch.get_num_threads()
    try:
        for cfg in configs:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            if log is not None:
                log(f"timing {cfg.label} ...")
            rows += _time_config(scene, _Timer(cfg=cfg, repeats=repeats, has_ort=has_ort,
                                                            has_openvino=has_openvino), stages)
    finally:
        torch.set_num_threads(saved_threads)
    _add_ratios(rows)
    return {"protocol": _protocol(scene, repeats), "configs": [c.label for c in configs], "rows": rows}


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def format_speed(result: dict[str, Any]) -> str:
    """The speed table: one row per (stage, engine), one column per configuration."""
    configs = result["configs"]
    width = 20
    lines = [f"speed: {result['protocol']['frame']}; model {result['protocol']['model']}",
             "ms (ratio = torch eager / engine, same column)",
             f"{'stage':<44}{'unit':<11}{'engine':<13}" + "".join(f"{c[:width - 2]:>{width}}" for c in configs)]
    labels = list(dict.fromkeys(r["label"] for r in result["rows"]))
    engines = list(dict.fromkeys(r["engine"] for r in result["rows"]))
    present = {(r["label"], r["engine"]) for r in result["rows"]}
    order = [(label, engine) for label in labels for engine in engines if (label, engine) in present]
    last_label = None
    for label, engine in order:
        cells = []
        unit = ""
        for c in configs:
            match = [r for r in result["rows"] if r["label"] == label and r["engine"] == engine and r["config"] == c]
            if not match:
                cells.append("-")
                continue
            r = match[0]
            unit = r["unit"]
            ratio = r["ratio_vs_torch"]
            cell = f"{r['ms']:.3f}" if r["ms"] < 10 else f"{r['ms']:.1f}"
            if ratio is not None and engine != "torch eager":
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        shown = label if label != last_label else ""
        last_label = label
        lines.append(f"{shown:<44}{unit:<11}{engine:<13}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)
