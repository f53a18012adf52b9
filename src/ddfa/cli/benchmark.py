"""``ddfa benchmark {aflw2000-3d,aflw,pose,detection,speed}``: reproducible accuracy and speed figures.

Each accuracy benchmark prints a table, and writes to ``--output`` (default ``out/benchmark``)
a JSON file with every figure, the exact protocol and the model's weights sha256, and a
cumulative error distribution plot (PNG) with one curve per yaw bin. ``--compare`` adds more
models (names or checkpoints, evaluated in the same run) or earlier runs (their JSON files)
to the plot and the printout. ``detection`` runs the whole pipeline, detector included, on the
full-size development photos (:mod:`ddfa.eval.detection`); its ``--compare`` takes more
detectors (or their result files) into one table and one CED plot. See :mod:`ddfa.eval`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..eval.report import BenchmarkResult

from ..errors import InputError

EPILOG = """\
examples:
  ddfa benchmark aflw2000-3d --model mb05 --data ../shared/data/aflw2000-3d --assets ../shared/assets
  ddfa benchmark aflw2000-3d --model runs/exp1/best.pth --compare mb05 out/benchmark/old.json
  ddfa benchmark aflw2000-3d --model mb05 --refine full      # test-time refinement, plain figures beside
  ddfa benchmark aflw --model mb05
  ddfa benchmark pose --model mb05
  ddfa benchmark detection --detector yunet --compare centerface faceboxes
  ddfa benchmark detection --refine full                     # refined landmark crop beside the plain ones
  ddfa benchmark speed --repeats 20
"""

ACCURACY = ("aflw2000-3d", "aflw", "pose")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..eval.protocols import FRAMES
    from ..pipeline.refine import REFINE_MODES
    from .main import add_common_model_options

    parser = subparsers.add_parser(
        "benchmark",
        help="reproduce the published accuracy tables and measure speed",
        description="Run a benchmark: AFLW2000-3D (68-point NME), AFLW (21-point NME), head pose (AFLW2000-3D) "
        "or per-stage speed. Nothing is trained or tuned on these test sets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benches = parser.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    helps = {
        "aflw2000-3d": "68-point NME on the AFLW2000-3D crops, by yaw bin, both annotations and both yaw splits",
        "aflw": "21-point NME on the shared 4500-face AFLW subset, by yaw bin",
        "pose": "head-pose mean absolute error (yaw, pitch, roll) on AFLW2000-3D",
    }
    for name in ACCURACY:
        sub = benches.add_parser(name, help=helps[name], description=helps[name] + ".")
        add_common_model_options(sub, detector=False, precision="f32")
        sub.add_argument("--data", metavar="DIR", default=None,
                         help=f"the {'aflw-subset' if name == 'aflw' else 'aflw2000-3d'} data folder (default: "
                         "$DDFA_DATA/<that name>, or data/<that name> beside the asset folder)")
        sub.add_argument("-o", "--output", metavar="DIR", default="out/benchmark",
                         help="folder for the JSON result and the CED plot (default: out/benchmark)")
        sub.add_argument("--batch-size", type=int, default=128, metavar="N",
                         help="regressor batch size (default: 128, as 3DDFA's benchmark)")
        sub.add_argument("--compare", nargs="+", default=[], metavar="MODEL_OR_JSON",
                         help="more models (names or checkpoints, evaluated now) or earlier result JSON files, "
                         "drawn on the same CED plot")
        sub.add_argument("--no-plot", action="store_true", help="skip the CED plot")
        if name != "aflw":
            sub.add_argument("--list", dest="face_list", choices=("2000", "1998"), default="2000",
                             help="all 2000 faces (default) or the 1998-face list without image02139 and "
                             "image03862")
        if name == "aflw2000-3d":
            sub.add_argument("--refine", choices=REFINE_MODES, default="none",
                             help="test-time refinement: mirrored (flip) and jittered (full) crops of each face "
                             "combined; prints the plain figures and ms per face of both beside (default: none)")
        if name != "pose":
            sub.add_argument("--frame", choices=tuple(FRAMES), default="v1",
                             help="landmark frame: v1 = 3DDFA v1's 1-based crop frame (x, 121-y), the published "
                             "protocol (default); ddfa = ddfa/3DDFA_V2 0-based frame. The other frame's means are "
                             "reported too")
        else:
            sub.add_argument("--allow-convention-mismatch", action="store_true",
                             help="record a failed angle-convention check in the results instead of stopping")
        sub.set_defaults(func=run, benchmark=name)

    sub = benches.add_parser(
        "detection", help="end to end on the full-size AFLW2000-3D development photos, detector included: detection "
        "rate, NME (box and landmark crop) and pose by yaw bin, boxes and ms per photo",
        description="Detect, align and score every full-size development photo (protocol: ddfa.eval.detection). "
        "--compare evaluates more detectors (or reads their earlier result files) into one table and one CED plot.")
    from .main import add_detector_options

    group = sub.add_argument_group("model")
    group.add_argument("--model", default="mb05", help="regressor (default: mb05)")
    group.add_argument("--assets", metavar="DIR", default=None, help="asset directory (default: $DDFA_HOME)")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads of the inference engines (default: all cores)")
    add_detector_options(group, compare=True)
    sub.add_argument("--compare", nargs="+", default=[], metavar="DETECTOR_OR_JSON",
                     help="more detector plug-ins (evaluated now, with the same --det-size where they have one) or "
                     "earlier detection result files")
    sub.add_argument("--data", metavar="DIR", default=None,
                     help="the aflw2000-3d data folder (default: $DDFA_DATA/aflw2000-3d, or data/aflw2000-3d beside "
                     "the asset folder)")
    sub.add_argument("--subset", type=int, default=None, metavar="N",
                     help="only N photos, evenly spaced over the name-sorted list (a quick check)")
    sub.add_argument("-o", "--output", metavar="DIR", default="out/benchmark",
                     help="folder for the JSON results and the CED plot (default: out/benchmark)")
    sub.add_argument("--refine", choices=REFINE_MODES, default="none",
                     help="also score the landmark-crop pass with this test-time refinement, beside the plain "
                     "passes, with its ms per face (default: none)")
    sub.add_argument("--no-plot", action="store_true", help="skip the CED plot")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.set_defaults(func=run_detection, benchmark="detection")

    sub = benches.add_parser("speed", help="per-stage latency: detection, regression, dense reconstruction, "
                             "rendering; CPU 1 and all threads, CUDA when present",
                             description="Per-stage latency with torch eager as the in-run baseline.")
    sub.add_argument("--model", default="mb05", help="regressor (default: mb05)")
    sub.add_argument("--assets", metavar="DIR", default=None, help="asset directory (default: $DDFA_HOME)")
    sub.add_argument("--repeats", type=int, default=10, metavar="N", help="timed runs per figure (default: 10)")
    sub.add_argument("--no-cuda", action="store_true", help="skip the CUDA configuration")
    sub.add_argument("-o", "--output", metavar="DIR", default="out/benchmark",
                     help="folder for speed.json (default: out/benchmark)")
    sub.set_defaults(func=run_speed, benchmark="speed")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    return parser


def _tag(text: str) -> str:
    name = Path(text).stem if ("/" in text or "\\" in text or Path(text).suffix in (".pth", ".tar", ".pt")) else text
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model"


def _evaluate(args: argparse.Namespace, model: str) -> BenchmarkResult:
    import ddfa

    from ..eval import run_aflw, run_aflw2000, run_pose

    regressor = ddfa.create_model(model, assets=args.assets, device=args.device, backend=args.backend,
                                  threads=args.threads, precision=args.precision)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.benchmark == "aflw2000-3d":
        return run_aflw2000(regressor, assets=args.assets, data_dir=args.data, face_list=args.face_list,
                            frame=args.frame, batch_size=args.batch_size, refine=args.refine)
    if args.benchmark == "aflw":
        return run_aflw(regressor, assets=args.assets, data_dir=args.data, frame=args.frame,
                        batch_size=args.batch_size)
    return run_pose(regressor, assets=args.assets, data_dir=args.data, face_list=args.face_list,
                    batch_size=args.batch_size, strict=not args.allow_convention_mismatch)


def precision_cost(result, reference) -> str:
    """Lines comparing a lower-precision run with its float32 run: each table's headline
    figure (mean of bins for NME, mean for pose) and the difference."""
    precision = result.model.get("precision", "?")
    lines = [f"accuracy cost of {precision} against f32 (same model, same data):"]
    for key, row in result.results.get("nme", result.results).items():
        ref = reference.results.get("nme", reference.results).get(key)
        if not isinstance(row, dict) or not isinstance(ref, dict):
            continue
        for field in ("mean_of_bins", "mean"):
            if isinstance(row.get(field), (int, float)) and isinstance(ref.get(field), (int, float)):
                delta = row[field] - ref[field]
                lines.append(f"  {key:<16} {field:<13} {ref[field]:.4f} -> {row[field]:.4f} ({delta:+.4f})")
                break
    return "\n".join(lines)


def _file_stem(args: argparse.Namespace, model: str) -> str:
    parts = [args.benchmark, _tag(model)]
    if getattr(args, "precision", "f32") != "f32":
        parts.append(args.precision)
    if getattr(args, "frame", "v1") != "v1":
        parts.append(f"frame-{args.frame}")
    if getattr(args, "face_list", "2000") != "2000":
        parts.append(f"list{args.face_list}")
    if getattr(args, "refine", "none") != "none":
        parts.append(f"refine-{args.refine}")
    return "_".join(parts)


def run(args: argparse.Namespace) -> int:
    from ..eval.refine import format_refine_lines
    from ..eval.report import format_table, load_json, plot_ced, write_json

    output = Path(args.output)
    items = [args.model, *args.compare]
    # earlier runs are read (and checked) first, so that a bad file fails before any work
    loaded = {}
    for k, item in enumerate(items):
        if k > 0 and item.endswith(".json"):
            result = load_json(item)
            if result.benchmark != args.benchmark:
                raise InputError(f"{item}: a {result.benchmark} result cannot be compared in a {args.benchmark} run")
            loaded[k] = result
    runs = []
    for k, item in enumerate(items):
        if k in loaded:
            print(f"compared with {item}:")
            print(format_table(loaded[k]))
            runs.append(loaded[k])
        else:
            result = _evaluate(args, item)
            print(format_table(result))
            if result.results.get("refine"):
                print(format_refine_lines(result))
            if args.precision != "f32":  # what the lower precision costs, against float32 in the same run
                print(precision_cost(result, _evaluate(argparse.Namespace(**{**vars(args), "precision": "f32"}),
                                                       item)))
            print(f"wrote {write_json(result, output / f'{_file_stem(args, item)}.json')}")
            runs.append(result)
        print()
    if not args.no_plot:
        stem = _file_stem(args, args.model) + ("_compare" if len(runs) > 1 else "")
        print(f"wrote {plot_ced(runs, output / f'{stem}_ced.png')}")
    return 0


def run_detection(args) -> int:
    from tqdm import tqdm

    from ..eval.detection import format_common_table, format_detection_table, format_markdown_table
    from ..eval.detection import run_detection as _run_detection
    from ..eval.report import load_json, plot_ced, write_json
    from .main import detector_options_for

    output = Path(args.output)
    items = [args.detector, *args.compare]
    loaded = {}
    for k, item in enumerate(items):
        if item.endswith(".json"):
            result = load_json(item)
            if result.benchmark != "detection":
                raise InputError(f"{item}: a {result.benchmark} result cannot be compared in a detection run")
            loaded[k] = result
    from ..detect.base import detector_spec

    options = {}
    for k, item in enumerate(items):
        if k in loaded:
            continue
        spec = detector_spec(item)
        has_size = spec.options_type is not None and "det_size" in {f.name for f in fields(spec.options_type)}
        if k == 0:
            options[k] = detector_options_for(item, args.detector_option, args.det_size)
        else:  # compared detectors get --det-size where they have one, nothing else
            options[k] = detector_options_for(item, [], args.det_size if has_size else None)
    runs = []
    for k, item in enumerate(items):
        if k in loaded:
            runs.append(loaded[k])
            continue
        bar = tqdm(total=None, unit="photo", desc=item, disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

        def progress(done, total, bar=bar):
            bar.total = total
            bar.update(1)

        result = _run_detection(item, model=args.model, assets=args.assets, data_dir=args.data, threads=args.threads,
                                detector_options=options[k] or None, subset=args.subset, progress=progress,
                                refine=args.refine)
        bar.close()
        size = (result.model.get("detector_options") or {}).get("det_size")
        stem = f"detection_{_tag(item)}" + (f"_{size}" if size else "")
        stem += f"_subset{args.subset}" if args.subset else ""
        stem += f"_refine-{args.refine}" if args.refine != "none" else ""
        print(f"wrote {write_json(result, output / f'{stem}.json')}")
        runs.append(result)
    print()
    print(format_detection_table(runs))
    common = format_common_table(runs)
    if common:
        print(common)
    print()
    print(format_markdown_table(runs))
    if not args.no_plot:
        stem = "detection_" + "_vs_".join(_tag(r.label) for r in runs)
        print(f"wrote {plot_ced(runs, output / f'{stem}_ced.png')}")
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from ..eval.speed import default_configs, format_speed
    from ..eval.speed import run_speed as _run_speed
    from ..io.results import write_json

    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    configs = default_configs(cuda=False if args.no_cuda else None)
    result = _run_speed(args.assets, model=args.model, repeats=args.repeats, configs=configs,
                        log=lambda msg: print(msg, flush=True))
    print(format_speed(result))
    print(f"wrote {write_json(Path(args.output) / 'speed.json', result)}")
    return 0
