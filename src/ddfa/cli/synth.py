"""``ddfa synth``: render synthetic training crops with their exact parameters."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="render random faces from the morphable model into a training set",
        description="Render NUM random faces (shape/expression from the parameter statistics, yaw over "
        "+-90 deg, lighting, skin albedo, synthetic backgrounds) as 120x120 crops with their exact "
        "parameters, in ddfa's training format (images/ + params.npz), optionally 3DDFA's too.",
    )
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--num", "-n", type=int, required=True, help="number of faces")
    parser.add_argument("--seed", type=int, default=0, help="data set seed; face i depends on (seed, i) only")
    parser.add_argument("--mesh", default="noneck", choices=("noneck", "full"), help="mesh to draw (default noneck)")
    parser.add_argument("--statistics", default="v2", choices=("v2", "v1"),
                        help="whitening whose mean/std the coefficients are drawn from (default v2)")
    parser.add_argument("--max-yaw", type=float, default=90.0, help="yaw range +- degrees (default 90)")
    parser.add_argument("--format", default="ddfa", choices=("ddfa", "3ddfa", "both"),
                        help="ddfa (default), or also 3DDFA's list + param_all_norm.pkl (v1-whitened)")
    parser.add_argument("--ext", default="png", choices=("png", "jpg"), help="image format (default png)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--assets", metavar="DIR", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..train.synth import SynthConfig, synthesize

    path = synthesize(args.out, args.num, seed=args.seed, assets=args.assets, mesh=args.mesh,
                      whitening=args.statistics, workers=args.workers, fmt=args.format, image_ext=args.ext,
                      cfg=SynthConfig(max_yaw=args.max_yaw), progress=not args.quiet)
    print(f"wrote {args.num} crops and {path}")
    return 0
