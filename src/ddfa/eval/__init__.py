"""Benchmarks: AFLW2000-3D and AFLW landmark NME, AFLW2000-3D head pose, and speed.

Each accuracy benchmark returns a :class:`~ddfa.eval.report.BenchmarkResult` (figures, exact
protocol, model identity, per-face errors) that :mod:`ddfa.eval.report` prints, saves as JSON
and plots as cumulative error distributions. Nothing here trains or tunes anything.

    >>> import ddfa
    >>> from ddfa.eval import run_aflw2000
    >>> result = run_aflw2000(ddfa.create_model("mb05", assets="assets"), assets="assets")
    >>> result.results["nme"]["ori/pose"]["mean_of_bins"]
"""

from .aflw import run_aflw
from .aflw2000 import run_aflw2000
from .pose import ConventionError, run_pose
from .report import BenchmarkResult, format_table, load_json, plot_ced, write_json

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
