"""Test-time refinement in the benchmarks: refined parameters of benchmark crops, timed.

A benchmark crop is the whole image the network sees: its roi box is the crop itself,
``(0, 0, 120, 120)`` in crop pixels, so the refined parameters come out in the crop's frame and
every protocol scores them exactly as it scores the plain ones. The jittered passes of a crop
are cut from the crop (zero outside it, as :func:`~ddfa.pipeline.crop.crop_face` pads photos).
Plain and refined runs are both timed, end to end from the crops in memory (cropping the
passes, the network, the combination), and reported as milliseconds per face beside the figures.
"""

from __future__ import annotations

import time

import numpy as np

from ..morphable.frames import CROP_SIZE
from ..morphable.params import NUM_PARAMS
from ..pipeline.refine import refine_transforms, regress_refined
from .protocols import regress

#: faces per chunk of a refined benchmark run (each face is T crops)
CHUNK = 256


def refined_crop_params(regressor, model, crops: np.ndarray, mode: str, batch_size: int = 128) -> np.ndarray:
    """(N, 120, 120, 3) benchmark crops -> (N, 62) float32 refined parameters (crop frame)."""
    transforms = refine_transforms(mode)
    roi = np.array([[0.0, 0.0, float(CROP_SIZE), float(CROP_SIZE)]])
    out = np.empty((len(crops), NUM_PARAMS), np.float32)
    for start in range(0, len(crops), CHUNK):
        chunk = crops[start:start + CHUNK]
        refined = regress_refined(regressor, model, list(chunk), np.arange(len(chunk)), np.repeat(roi, len(chunk), 0),
                                  transforms, batch_size=batch_size)
        out[start:start + len(chunk)] = refined.params
    return out


def plain_and_refined(regressor, model, crops: np.ndarray, mode: str, batch_size: int = 128) -> dict:
    """Plain and refined parameters of the crops, each timed.

    Returns:
        ``{"plain": (N, 62), "refined": (N, 62), "ms_per_face": {"plain": ms, "refined": ms},
        "passes": T}``.
    """
    start = time.perf_counter()
    plain = regress(regressor, crops, batch_size)
    t_plain = time.perf_counter() - start
    start = time.perf_counter()
    refined = refined_crop_params(regressor, model, crops, mode, batch_size)
    t_refined = time.perf_counter() - start
    n = max(len(crops), 1)
    return {"plain": plain, "refined": refined, "passes": len(refine_transforms(mode)),
            "ms_per_face": {"plain": 1000.0 * t_plain / n, "refined": 1000.0 * t_refined / n}}


def format_refine_lines(result) -> str:
    """The plain figures and the cost, printed under a refined benchmark's table ('' if none)."""
    info = result.results.get("refine")
    if not info:
        return ""
    ms = info["ms_per_face"]
    lines = [f"refine {info['mode']}: {info['passes']} passes per face; {ms['refined']:.2f} ms per face "
             f"(plain {ms['plain']:.2f} ms, same run, {info.get('threads', 'default')} threads)",
             "plain (no refinement), same protocol:"]
    for key, row in result.results["plain"]["nme"].items():
        ref = result.results["nme"][key]
        lines.append(f"  {key:<14} mean of bins {row['mean_of_bins']:.4f} -> refined {ref['mean_of_bins']:.4f}   "
                     f"all faces {row['mean_all']:.4f} -> {ref['mean_all']:.4f}")
    return "\n".join(lines)
