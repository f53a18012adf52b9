"""Benchmark results: one record type, the terminal tables, JSON files and CED plots.

A :class:`BenchmarkResult` holds the summary figures, the exact protocol, the model identity
(name, weights sha256, backend) and the per-face errors with each face's yaw bin, so that a
saved JSON file can be re-plotted and compared with later runs (``--compare``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.results import read_mapping
from ..io.results import write_json as write_document
from .protocols import YAW_BIN_LABELS

SCHEMA = "ddfa-benchmark/1"


@dataclass
class BenchmarkResult:
    """The outcome of one accuracy benchmark run.

    Attributes:
        benchmark: ``"aflw2000-3d"``, ``"aflw"`` or ``"pose"``.
        model: ``{"name", "weights_sha256", "backend", "device", "whitening"}``.
        protocol: every choice that defines the figures (data, lists, ground truth, bins,
            normalisation, frame...), as strings, numbers and lists.
        results: the summary figures (nested dicts of floats / int lists).
        curves: per-face errors for CED plots: ``{name: {"errors": (N,) array, "bins": (N,)
            int yaw bin, "unit": "%" or "deg"}}``.
        extra: anything else worth recording (diagnostics, checks).
    """

    benchmark: str
    model: dict
    protocol: dict
    results: dict
    curves: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short name for plots and tables: the model name (file stem for checkpoints)."""
        name = str(self.model.get("name", "model"))
        return Path(name).stem if ("/" in name or "\\" in name or name.endswith((".pth", ".tar", ".pt"))) else name

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the result (per-face errors as lists, 9 significant digits)."""
        from .. import __version__

        return {
            "schema": SCHEMA,
            "ddfa_version": __version__,
            "benchmark": self.benchmark,
            "model": self.model,
            "protocol": self.protocol,
            "results": self.results,
            "extra": self.extra,
            "per_face": {
                name: {
                    "unit": curve["unit"],
                    "bins": np.asarray(curve["bins"]).astype(int).tolist(),
                    "errors": [float(f"{v:.9g}") for v in np.asarray(curve["errors"], dtype=np.float64)],
                }
                for name, curve in self.curves.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "result") -> BenchmarkResult:
        if data.get("schema") != SCHEMA:
            raise InputError(f"{source}: not a ddfa benchmark result (schema {data.get('schema')!r})")
        curves = {
            name: {"unit": c["unit"], "bins": np.asarray(c["bins"], dtype=int),
                   "errors": np.asarray(c["errors"], dtype=np.float64)}
            for name, c in data.get("per_face", {}).items()
        }
        return cls(data["benchmark"], data["model"], data["protocol"], data["results"], curves,
                   data.get("extra", {}))


def write_json(result: BenchmarkResult, path: str | Path) -> Path:
    """Write ``result`` as JSON with :func:`ddfa.io.results.write_json` (atomic, creates the
    folder, adds ``schema_version``). Returns the path."""
    return write_document(path, result.to_dict())


def load_json(path: str | Path) -> BenchmarkResult:
    """Read a result written by :func:`write_json`.

    Raises:
        InputError: the file is missing or not a ddfa benchmark result.
    """
    try:
        data = read_mapping(path, json.loads, json.JSONDecodeError, "JSON file")
    except InputError as exc:
        raise InputError(f"{exc} (not a ddfa benchmark result)") from None
    return BenchmarkResult.from_dict(data, str(path))


# ---------------------------------------------------------------------- tables
def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_nme_table(result: BenchmarkResult, digits: int = 4) -> str:
    """AFLW2000-3D / AFLW table: one row per (annotation, yaw split)."""
    m, p = result.model, result.protocol
    sha = (m.get("weights_sha256") or "n/a")[:12]
    lines = [
        f"{result.benchmark}: model {m.get('name')} (weights sha256 {sha}..., {m.get('backend')}"
        f"{', ' + m['precision'] if m.get('precision') else ''}), "
        f"{p.get('num_faces')} faces, frame {p.get('frame')}",
        f"NME (%) normalised by {p.get('normalisation_short', p.get('normalisation'))}",
    ]
    header = f"{'GT':<7}{'yaw split':<26}" + "".join(f"{b:>10}" for b in YAW_BIN_LABELS) + \
        f"{'mean':>9}{'std':>8}{'all':>9}   counts"
    lines.append(header)
    for key, row in result.results["nme"].items():
        annotation, split = key.split("/", 1)
        lines.append(
            f"{annotation:<7}{row.get('split_file', split):<26}"
            + "".join(f"{_fmt(row[k], digits):>10}" for k in ("bin_0_30", "bin_30_60", "bin_60_90"))
            + f"{_fmt(row['mean_of_bins'], digits):>9}{_fmt(row['std_of_bins'], 3):>8}"
            + f"{_fmt(row['mean_all'], digits):>9}   " + "/".join(str(c) for c in row["bin_counts"])
        )
    other = result.results.get("other_frame")
    if other:
        figures = ", ".join(f"{k} {_fmt(v, digits)}" for k, v in other["mean_of_bins"].items())
        lines.append(f"same predictions in frame {other['frame']}: mean of bins {figures}")
    return "\n".join(lines)


def format_pose_table(result: BenchmarkResult, digits: int = 2) -> str:
    """Head-pose table: MAE of yaw, pitch, roll and their mean, degrees."""
    m, p, r = result.model, result.protocol, result.results
    sha = (m.get("weights_sha256") or "n/a")[:12]
    lines = [
        f"pose: model {m.get('name')} (weights sha256 {sha}..., {m.get('backend')}), "
        f"{p.get('num_faces')} of {p.get('num_faces_total')} AFLW2000-3D faces "
        f"(GT angles within ±{p.get('angle_limit_deg'):g}°)",
        f"{'MAE (deg)':<18}{'yaw':>8}{'pitch':>8}{'roll':>8}{'mean':>8}",
        f"{'all faces':<18}" + "".join(f"{_fmt(r['mae'][k], digits):>8}" for k in ("yaw", "pitch", "roll", "mean")),
    ]
    for key, label in zip(("bin_0_30", "bin_30_60", "bin_60_90"), YAW_BIN_LABELS):
        row = r["mae_by_yaw_bin"][key]
        cells = "".join(f"{_fmt(row[k], digits):>8}" for k in ("yaw", "pitch", "roll", "mean"))
        lines.append(f"{'|yaw| ' + label:<18}{cells}   n={row['count']}")
    check = r["convention_check"]
    geo = check["mean_geodesic_deg"]
    if check["passed"]:
        lines.append(f"angle convention checked on the GT: ddfa's ({check['ddfa_convention']}) fits best, "
                     f"{_fmt(check['ddfa_mean_geodesic_deg'], 2)} deg mean rotation error "
                     f"(next: {_runner_up(check)})")
    else:
        lines.append(f"** ANGLE CONVENTION CHECK FAILED: the GT fits '{check['best']}' best "
                     f"({_fmt(geo[check['best']], 2)} deg), ddfa's ({check['ddfa_convention']}) gives "
                     f"{_fmt(check['ddfa_mean_geodesic_deg'], 2)} deg: the MAE above mixes conventions **")
    return "\n".join(lines)


def _runner_up(check: dict) -> str:
    geo = check["mean_geodesic_deg"]
    others = [name for name in geo if name != check["ddfa_convention"]]
    return f"{others[0]}, {_fmt(geo[others[0]], 2)} deg" if others else "-"


def format_table(result: BenchmarkResult) -> str:
    return format_pose_table(result) if result.benchmark == "pose" else format_nme_table(result)


# ---------------------------------------------------------------------- CED plots
_LINESTYLES = ("-", "--", ":", "-.")


def ced_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of faces whose error is <= each threshold: (T,) in [0, 1]."""
    errors = np.sort(np.asarray(errors, dtype=np.float64))
    if errors.size == 0:
        return np.zeros(len(thresholds))
    return np.searchsorted(errors, thresholds, side="right") / errors.size


def plot_ced(results: list[BenchmarkResult], path: str | Path, *, panels: list[str] | None = None,
             x_max: float | None = None) -> Path:
    """Cumulative error distribution: one panel per curve set, one curve per yaw bin and run.

    With one run, bins are told apart by colour; with several (``--compare``), each run has its
    colour and each bin its line style. The figure is written as PNG (matplotlib, Agg).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not results:
        raise InputError("plot_ced: no results to plot")
    panels = panels or list(results[0].curves)
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes.ravel(), panels):
        curves = [(r, r.curves[panel]) for r in results if panel in r.curves]
        if not curves:
            ax.set_visible(False)
            continue
        unit = curves[0][1]["unit"]
        top = x_max or (10.0 if unit == "%" else 30.0)
        xs = np.linspace(0.0, top, 401)
        for k, (res, curve) in enumerate(curves):
            errors, bins = np.asarray(curve["errors"]), np.asarray(curve["bins"])
            for b, label in enumerate(YAW_BIN_LABELS):
                sel = errors[bins == b]
                if not sel.size:
                    continue
                if len(curves) == 1:
                    colour, style, name = colours[b % len(colours)], "-", f"|yaw| {label} (n={sel.size})"
                else:
                    colour, style = colours[k % len(colours)], _LINESTYLES[b % len(_LINESTYLES)]
                    name = f"{res.label}, |yaw| {label}"
                ax.plot(xs, 100.0 * ced_curve(sel, xs), style, color=colour, label=name, linewidth=1.6)
        ax.set_xlim(0, top)
        ax.set_ylim(0, 100)
        ax.set_xlabel("NME (%)" if unit == "%" else "mean absolute angle error (deg)")
        ax.set_ylabel("faces (%)")
        who = curves[0][0].label if len(curves) == 1 else " vs ".join(r.label for r, _ in curves)
        ax.set_title(f"{curves[0][0].benchmark} ({who}): {panel}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
