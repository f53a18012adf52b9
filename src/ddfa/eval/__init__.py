"""Benchmarks: AFLW2000-3D and AFLW landmark NME, AFLW2000-3D head pose, and speed.

Each accuracy benchmark returns a :class:`~ddfa.eval.report.BenchmarkResult` (figures, exact
protocol, model identity, per-face errors) that :mod:`ddfa.eval.report` prints, saves as JSON
and plots as cumulative error distributions. Nothing here trains or tunes anything.

    >>> import ddfa
    >>> from ddfa.eval import run_aflw2000
    >>> result = run_aflw2000(ddfa.create_model("mb05", assets="assets"), assets="assets")
    >>> result.results["nme"]["ori/pose"]["mean_of_bins"]
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .aflw import run_aflw
    from .aflw2000 import run_aflw2000
    from .pose import ConventionError, run_pose
    from .report import BenchmarkResult, format_table, load_json, plot_ced, write_json

# imported on first use (the pose protocol needs scipy): ``ddfa --help`` lists the benchmarks
# without loading them
_WHERE = {"run_aflw": "aflw", "run_aflw2000": "aflw2000", "ConventionError": "pose", "run_pose": "pose",
          "BenchmarkResult": "report", "format_table": "report", "load_json": "report", "plot_ced": "report",
          "write_json": "report"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BenchmarkResult",
    "ConventionError",
    "format_table",
    "load_json",
    "plot_ced",
    "run_aflw",
    "run_aflw2000",
    "run_pose",
    "write_json",
]
