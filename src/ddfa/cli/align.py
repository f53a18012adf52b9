"""``ddfa align PATH... --output DIR``: align every face in photos and folders.

For each image it writes ``DIR/<stem>.json`` (see :mod:`ddfa.io.results`) and the requested
``--outputs`` (default: ``2d_sparse``, a landmark overlay ``DIR/<stem>_2d_sparse.png``). A file
that cannot be read or processed is reported and skipped; the run goes on, lists the failures
in its summary and in ``DIR/failures.json``, and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import DdfaError, InputError
from ..io.image import is_image_file

EPILOG = """\
examples:
  ddfa align photo.jpg --output out
  ddfa align photos/ more.jpg --output out --outputs 2d_sparse --max-faces 1
  ddfa align photos/ --recursive --crop-policy landmarks --assets /path/to/assets --output out
  ddfa align photo.jpg --crop-policy landmarks --refine full --output out
"""


def register(subparsers) -> argparse.ArgumentParser:
    from ..render.outputs import OUTPUTS
    from .main import add_common_model_options

    parser = subparsers.add_parser(
        "align",
        help="detect and align faces in images and folders",
        description="Detect every face, regress its 3DMM parameters and write landmarks, pose and "
        "the chosen outputs per image.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders of images")
    parser.add_argument("-o", "--output", default="out", metavar="DIR", help="output folder (default: out)")
    parser.add_argument(
        "--outputs", default="2d_sparse", metavar="LIST",
        help="comma-separated outputs per image (default: 2d_sparse; 'none' for JSON only): "
        + "; ".join(f"{name}: {spec.description}" for name, spec in OUTPUTS.items()),
    )
    parser.add_argument("--crop-policy", choices=("box", "landmarks"), default="box",
                        help="crop from the detection box (one pass, default) or refine from the first "
                        "pass's landmarks (two passes)")
    parser.add_argument("--refine", choices=("none", "flip", "full"), default="none",
                        help="test-time refinement: also regress the mirrored crop (flip) and jittered crops "
                        "(full) and combine them; adds uncertainty and confidence to the JSON (default: none)")
    parser.add_argument("--max-faces", type=int, default=None, metavar="N",
                        help="keep at most N faces per image, best score first")
    parser.add_argument("--recursive", action="store_true", help="also search sub-folders of folder arguments")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_model_options(parser)
    parser.set_defaults(func=run)
    return parser


def collect_inputs(paths: list[str], recursive: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders into their image files; missing paths become failures."""
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and is_image_file(p))
            if not found:
                failures.append((raw, "folder contains no image files"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            failures.append((raw, "no such file or folder"))
    return files, failures


def _unique_stems(files: list[Path]) -> list[str]:
    """Output stems, made unique when two inputs share a file name."""
    seen: dict[str, int] = {}
    stems = []
    for path in files:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        stems.append(stem if count == 0 else f"{stem}_{count}")
    return stems


def run(args) -> int:
    from tqdm import tqdm

    from ..io.image import read_image
    from ..io.results import image_result, write_json
    from ..pipeline import AlignOptions, FaceAligner
    from .main import base_options_from_args, detector_options_from_args
    from ..render.outputs import check_output_names, write_outputs

    outputs = [] if args.outputs.strip() in ("", "none") else [s.strip() for s in args.outputs.split(",") if s.strip()]
    outputs = check_output_names(outputs)
    if args.max_faces is not None and args.max_faces < 1:
        raise InputError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.detector in (None, "none"):
        raise InputError("--detector none: ddfa align has no way to take boxes; choose a detector plug-in")
    options = AlignOptions(crop_policy=args.crop_policy, max_faces=args.max_faces, refine=args.refine)
    files, failures = collect_inputs(args.paths, args.recursive)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    aligner = FaceAligner(model=args.model, detector=args.detector, base_options=base_options_from_args(args),
                          options=options, detector_options=detector_options_from_args(args))
    num_faces = 0
    done = 0
    bar = tqdm(files, unit="img", disable=args.quiet or len(files) < 2, file=sys.stderr, dynamic_ncols=True)
    for path, stem in zip(bar, _unique_stems(files)):
        try:
            image = read_image(path)
            faces = aligner(image)
            write_json(out_dir / f"{stem}.json", image_result(str(path), image.shape, faces, aligner.regressor.name))
            write_outputs(outputs, image, faces, out_dir, stem)
        except DdfaError as exc:
            failures.append((str(path), str(exc)))
            bar.write(f"ddfa: skipped {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # anything else: record it and keep the batch going
            message = f"{path}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            failures.append((str(path), message))
            bar.write(f"ddfa: skipped {message}", file=sys.stderr)
            continue
        done += 1
        num_faces += len(faces)
        bar.set_postfix(faces=num_faces, failed=len(failures), refresh=False)
    bar.close()
    failures_path = out_dir / "failures.json"
    if failures:
        write_json(failures_path, [{"path": p, "error": e} for p, e in failures])
    elif failures_path.exists():
        failures_path.unlink()
    print(f"ddfa align: {done} image(s) aligned, {num_faces} face(s) found, {len(failures)} failure(s); "
          f"results in {out_dir}{os.sep}")
    for path, error in failures:
        print(f"  failed: {error if error.startswith(path) else path + ': ' + error}")
    return 1 if failures else 0
