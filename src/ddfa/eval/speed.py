"""Speed: per-stage latency of the photo pipeline, with torch eager as the in-run baseline.

Stages (the frame is ``3DDFA_V2/examples/inputs/trump_hillary.jpg``, 1536x689, resized with
``cv2.resize`` (bilinear, aspect ratio not kept) to 1280x720: a 720p frame with two faces):

* **detection**: FaceBoxes on the whole frame (FaceBoxes itself scales it to fit 720x1080),
  decoding and NMS included; ms per frame.
* **regression, batch 1** and **batch 128**: crops (uint8 BGR) -> de-whitened 62 params,
  preprocessing included; ms per face (batch 128 = 64 copies of the two face crops).
* **dense reconstruction**: the 38,365-vertex mesh of one face in image pixels (basis product,
  pose, crop -> image); ms per face. ddfa's path is numpy; torch eager is the baseline.
* **rendering**: ``ddfa.render.render_shaded(frame, faces)`` (both faces, flat-shaded mesh over
  the frame); ms per frame. Reported as unavailable when that function cannot be imported.

Configurations: CPU with 1 thread and with all threads (``torch.set_num_threads`` for torch,
``threads=`` for onnxruntime sessions), and CUDA (torch) when available. numpy's BLAS thread
count is not changed (no extra dependency to control it). Every figure is the median of
``repeats`` timed runs after warm-up runs; ratios are the torch eager time of the same stage and
configuration divided by the engine's time (> 1: faster than torch eager).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..assets.store import resolve_assets
from ..io.image import read_image

FRAME_IMAGE = "3DDFA_V2/examples/inputs/trump_hillary.jpg"
FRAME_SIZE = (1280, 720)  # width, height
BATCH = 128


@dataclass
class Config:
    """One hardware configuration: label, torch device, CPU threads (None on CUDA)."""

    label: str
    device: str
    threads: int | None


def default_configs(cuda: bool | None = None) -> list[Config]:
    """CPU 1 thread, CPU all threads, and CUDA when available (``cuda=None``: auto)."""
    n = os.cpu_count() or 1
    configs = [Config("CPU 1 thread", "cpu", 1)]
    if n > 1:
        configs.append(Config(f"CPU {n} threads", "cpu", n))
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        configs.append(Config("CUDA " + torch.cuda.get_device_name(0), "cuda", None))
    return configs


def time_ms(fn, repeats: int, warmup: int = 2, sync=None) -> float:
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


def load_frame(store) -> np.ndarray:
    """The 1280x720 two-face test frame (BGR uint8)."""
    image = read_image(store.path(FRAME_IMAGE))
    return cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_LINEAR)


def _render_function():
    try:
        from ..render import render_shaded  # noqa: PLC0415
    except ImportError:
        return None
    return render_shaded


def run_speed(assets=None, *, model: str = "mb05", repeats: int = 10, configs: list[Config] | None = None,
              stages: tuple[str, ...] | None = None, log=None) -> dict:
    """Time every stage in every configuration.

    Args:
        assets: asset directory or store.
        model: regressor name or checkpoint.
        repeats: timed runs per figure (batch 128: ``max(2, repeats // 3)``).
        configs: hardware configurations (default :func:`default_configs`).
        stages: subset of ``("detection", "regression_b1", "regression_b128", "dense", "render")``.
        log: optional ``print``-like callable for progress lines.

    Returns:
        ``{"protocol": {...}, "configs": [labels], "rows": [{"stage", "label", "unit", "engine",
        "config", "ms", "ratio_vs_torch"}...]}``; an unavailable stage has ``ms = None`` and a
        ``note``.
    """
    from ..detect.faceboxes.detector import FaceBoxesDetector
    from ..morphable.frames import model_to_image
    from ..morphable.model import load_morphable_model
    from ..nets.onnx_backend import onnxruntime_available
    from ..nets.registry import create_model
    from ..pipeline import FaceAligner
    from ..pipeline.crop import crop_faces, roi_from_box

    store = resolve_assets(assets)
    configs = configs or default_configs()
    stages = stages or ("detection", "regression_b1", "regression_b128", "dense", "render")
    say = log or (lambda *_: None)
    frame = load_frame(store)
    has_ort = onnxruntime_available()

    # the faces of the frame, once, with ddfa's default path (reused by every stage)
    aligner = FaceAligner(model, assets=store, detector="faceboxes")
    faces = aligner(frame)
    if not faces:
        raise RuntimeError("speed benchmark: no face found in the test frame")
    rois = roi_from_box(np.stack([f.box for f in faces]))
    crops = crop_faces(frame, rois)
    crops128 = np.ascontiguousarray(np.resize(crops, (BATCH,) + crops.shape[1:]))
    params1 = faces[0].params[None].astype(np.float32)
    roi1 = faces[0].roi_box[None]
    morph = load_morphable_model(store, "noneck")
    render = _render_function()

    rows: list[dict] = []
    saved_threads = torch.get_num_threads()
    try:
        for cfg in configs:
            cuda = cfg.device.startswith("cuda")
            sync = torch.cuda.synchronize if cuda else None
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            say(f"timing {cfg.label} ...")

            def add(stage, label, unit, engine, ms, note=None):
                rows.append({"stage": stage, "label": label, "unit": unit, "engine": engine, "config": cfg.label,
                             "ms": ms, "note": note})

            if "detection" in stages:
                label = f"detection ({FRAME_SIZE[0]}x{FRAME_SIZE[1]}, {len(faces)} faces)"
                det = FaceBoxesDetector(assets=store, device=cfg.device, backend="torch")
                add("detection", label, "per frame", "torch eager",
                    time_ms(lambda: det.detect(frame), repeats, sync=sync))
                if not cuda and has_ort:
                    det_ort = FaceBoxesDetector(assets=store, backend="onnxruntime", threads=cfg.threads)
                    add("detection", label, "per frame", "onnxruntime", time_ms(lambda: det_ort.detect(frame), repeats))
            regressors = [("torch eager", create_model(model, assets=store, device=cfg.device, backend="torch"))]
            if not cuda and has_ort and any(s.startswith("regression") for s in stages):
                regressors.append(("onnxruntime", create_model(model, assets=store, backend="onnxruntime",
                                                               threads=cfg.threads)))
            for engine, reg in regressors:
                if "regression_b1" in stages:
                    add("regression_b1", "regression, batch 1", "per face", engine,
                        time_ms(lambda: reg(crops[:1]), 3 * repeats, warmup=3, sync=sync))
                if "regression_b128" in stages:
                    ms = time_ms(lambda: reg(crops128, batch_size=BATCH), max(2, repeats // 3), warmup=1, sync=sync)
                    add("regression_b128", f"regression, batch {BATCH}", "per face", engine, ms / BATCH)
            if "dense" in stages:
                label = f"dense reconstruction ({morph.num_vertices:,} vertices)"
                tmodel = morph.to_torch(device=cfg.device)
                tparams = torch.as_tensor(params1, device=cfg.device)
                troi = torch.as_tensor(roi1, dtype=torch.float32, device=cfg.device)

                def dense_torch():
                    with torch.inference_mode():
                        return model_to_image(tmodel(tparams, dense=True), troi)

                add("dense", label, "per face", "torch eager", time_ms(dense_torch, 2 * repeats, sync=sync))
                if not cuda:
                    add("dense", label, "per face", "numpy",
                        time_ms(lambda: model_to_image(morph.vertices(params1), roi1), 2 * repeats))
            if "render" in stages and not cuda:
                label = f"rendering ({len(faces)} faces, shaded)"
                if render is None:
                    add("render", label, "per frame", "ddfa.render", None,
                        "unavailable: ddfa.render.render_shaded cannot be imported")
                else:
                    add("render", label, "per frame", "ddfa.render", time_ms(lambda: render(frame, faces), repeats))
    finally:
        torch.set_num_threads(saved_threads)

    # ratios against torch eager of the same stage and configuration
    base = {(r["stage"], r["config"]): r["ms"] for r in rows if r["engine"] == "torch eager"}
    for r in rows:
        b = base.get((r["stage"], r["config"]))
        r["ratio_vs_torch"] = (b / r["ms"]) if (b and r["ms"]) else None
    protocol = {
        "frame": f"{FRAME_IMAGE} resized with cv2.resize (bilinear, aspect not kept) to "
                 f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}; {len(faces)} faces",
        "model": model,
        "statistic": f"median of {repeats} timed runs (regression batch 1: {3 * repeats}, batch {BATCH}: "
                     f"{max(2, repeats // 3)}, dense: {2 * repeats}) after warm-up runs",
        "units": "ms per frame (detection, rendering) or per face (regression, dense reconstruction)",
        "ratio": "torch eager ms / engine ms, same stage and configuration (> 1: faster than torch eager)",
        "threads": "torch.set_num_threads(n) for torch; onnxruntime intra-op threads = n; numpy BLAS threads "
                   "not changed",
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "render_available": render is not None,
    }
    return {"protocol": protocol, "configs": [c.label for c in configs], "rows": rows}


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except Exception:
        return None
    return onnxruntime.__version__


def format_speed(result: dict) -> str:
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
    notes = []
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
            if r["ms"] is None:
                cells.append("unavailable")
                if r.get("note") and r["note"] not in notes:
                    notes.append(r["note"])
                continue
            ratio = r["ratio_vs_torch"]
            cell = f"{r['ms']:.3f}" if r["ms"] < 10 else f"{r['ms']:.1f}"
            if ratio is not None and engine != "torch eager":
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        shown = label if label != last_label else ""
        last_label = label
        lines.append(f"{shown:<44}{unit:<11}{engine:<13}" + "".join(f"{c:>{width}}" for c in cells))
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)
