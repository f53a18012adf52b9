"""Per-stage speed of ddfa, with torch eager as the in-run baseline (prints ms and ratios).

Same code as ``ddfa benchmark speed`` (:mod:`ddfa.eval.speed`): FaceBoxes detection on a
1280x720 two-face frame, regression at batch 1 and 128, dense reconstruction of the 38,365-vertex
mesh, and shaded rendering when ``ddfa.render.render_shaded`` exists; on CPU with 1 and all
threads, and on CUDA when available.

    python benchmarks/bench_speed.py --assets ../shared/assets [--repeats 20] [--no-cuda] [--json out/speed.json]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ddfa.eval.speed import default_configs, format_speed, run_speed
    from ddfa.io.results import write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.add_argument("--model", default="mb05", help="regressor (default: mb05)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (default: 10)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA configuration")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = run_speed(args.assets, model=args.model, repeats=args.repeats,
                       configs=default_configs(cuda=False if args.no_cuda else None),
                       log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_speed(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
