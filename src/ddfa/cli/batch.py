"""``ddfa batch INPUT... --output OUT``: align many photos into Parquet shards, resumably.

INPUT is a folder (recursive), a glob, a list file (.txt, .csv, .parquet) or an image, local or
an fsspec URI. OUT gets ``faces/``, ``images/`` and ``failures/`` Parquet shards and, when every
input is done, ``_SUCCESS`` (see :mod:`ddfa.io.batch`; read them with ``ddfa.io.read_batch``).
Re-running the same command after a crash or Ctrl-C processes only what is missing. Exit status:
0 when all inputs are done without failure, 1 when some failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os

from ..errors import InputError

EPILOG = """\
examples:
  ddfa batch photos/ --output out/photos                        # all cores of this machine
  ddfa batch 'photos/**/*.jpg' --output out/photos --max-faces 1
  ddfa batch list.parquet --output out/run --engine ray          # a local Ray
  ddfa batch s3://bucket/photos/ --output out/run --engine ray --address ray://head:10001
  ddfa batch list.csv --output out/run --engine ray --device cuda --batch-size 64
"""


def register(subparsers) -> argparse.ArgumentParser:
    from ..pipeline.refine import REFINE_MODES
    from .main import add_common_model_options

    parser = subparsers.add_parser(
        "batch",
        help="align many photos into Parquet tables (resumable; local processes or Ray)",
        description="Detect and align every face of many photos; write one Parquet row per face, per "
        "image and per failure. Re-running the same command resumes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="folder (recursive), glob, list file (.txt/.csv/.parquet) or image; local or a URI "
                        "such as s3://bucket/photos/")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (or URI) of the tables")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: a process pool of this machine (default); ray: Ray Data")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="Ray cluster to use (e.g. ray://head:10001); default $RAY_ADDRESS, else a local Ray")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N",
                        help="images per task; their faces share one network batch (default: 16)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (local) or CPU actors (ray); default: all cores / cluster CPUs")
    parser.add_argument("--regress-workers", type=int, default=None, metavar="N",
                        help="ray: separate regression actors (default: one per GPU with --device cuda, "
                        "else none: the CPU actors regress)")
    parser.add_argument("--shard-size", type=int, default=2000, metavar="N",
                        help="images per Parquet shard, the unit a crash can lose (default: 2000)")
    parser.add_argument("--crop-policy", choices=("box", "landmarks"), default="box",
                        help="crop from the detection box (one pass, default) or refine from the first "
                        "pass's landmarks (two passes)")
    parser.add_argument("--refine", choices=REFINE_MODES, default="none",
                        help="test-time refinement: also regress the mirrored crop (flip) and jittered crops "
                        "(full) and combine them; fills the uncertainty and confidence columns (default: none)")
    parser.add_argument("--max-faces", type=int, default=None, metavar="N",
                        help="keep at most N faces per image, best score first")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_model_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..batch import AlignerSpec, BatchOptions, run_batch
    from .main import base_options_from_args, detector_options_from_args

    if args.max_faces is not None and args.max_faces < 1:
        raise InputError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.detector in (None, "none"):
        raise InputError("--detector none: ddfa batch has no way to take boxes; choose a detector plug-in")
    base = base_options_from_args(args)  # validates device, backend, threads
    spec = AlignerSpec(model=args.model, detector=args.detector, detector_options=detector_options_from_args(args),
                       assets=os.path.abspath(base.assets.root), device=base.device, backend=base.backend,
                       precision=base.precision, threads=base.threads, crop_policy=args.crop_policy,
                       max_faces=args.max_faces, refine=args.refine)
    options = BatchOptions(engine=args.engine, address=args.address, batch_size=args.batch_size,
                           workers=args.workers, regress_workers=args.regress_workers, shard_size=args.shard_size,
                           progress=not args.quiet)
    try:
        summary = run_batch(args.inputs, args.output, spec, options)
    except KeyboardInterrupt:
        print(f"ddfa batch: interrupted; what was processed is committed in {args.output}{os.sep}. "
              "Re-run the same command to resume.")
        raise
    line = (f"ddfa batch: {summary.processed} image(s) processed in {summary.seconds:.1f} s "
            f"({summary.images_per_s:.1f} img/s, {summary.faces_per_s:.1f} faces/s): {summary.faces} face(s), "
            f"{summary.no_face} without a face, {summary.failed} failure(s)")
    if summary.skipped:
        line += f"; {summary.skipped} already done"
    if summary.duplicates:
        line += f"; {summary.duplicates} duplicate input(s) ignored"
    print(line)
    totals = summary.totals
    if not summary.complete:
        print(f"  {summary.missing} input(s) not processed; re-run the same command to resume")
    if summary.complete:
        print(f"  {args.output}: {totals['images']} image(s), {totals['faces']} face(s), "
              f"{totals['images_without_faces']} without a face, {totals['images_failed']} failed "
              f"(read with ddfa.io.read_batch; failures in {args.output}{os.sep}failures{os.sep})")
    if summary.complete and totals.get("images_failed"):
        import ddfa.io

        for row in ddfa.io.read_batch(args.output, "failures").to_pylist()[:20]:
            print(f"  failed: {row['message']}")
        if totals["images_failed"] > 20:
            print(f"  ... and {totals['images_failed'] - 20} more")
    return 1 if (not summary.complete or totals.get("images_failed")) else 0
