"""``ddfa align PATH... --output DIR``: align every face in photos and folders.

**Output names.** Each input is named by its path relative to the *common root* of all inputs
(the deepest folder holding every input file), its *key*: ``ddfa align d1/a.jpg d2/a.jpg -o out``
gives the keys ``d1/a.jpg`` and ``d2/a.jpg``; a single photo or one folder's photos are keyed by
their file names. The outputs of key ``K`` are ``DIR/K.json`` (see :mod:`ddfa.io.results`) and
``DIR/K_<output>.png`` / ``DIR/K_face<i>.ply`` ... for the requested ``--outputs`` (default:
``2d_sparse``, a landmark overlay). The file name keeps its suffix, so ``a.jpg`` and ``a.png``
never share a name, and two inputs never share a key.

**Never overwritten**: an input file, and a file ddfa did not write for that key (another
input's results, a user's own file) are never replaced: the image is listed as a failure
instead (``--overwrite`` allows the latter, never the former).

**The manifest** ``DIR/.ddfa/index.jsonl`` (:mod:`ddfa.io.manifest`) maps each key to its input,
status and outputs. Each image's outputs are written under temporary names and moved into
place only when all are complete, the result JSON last; then the manifest says ``done``. A
re-run skips done images (same input file, unchanged, same model and settings, outputs all
present) unless ``--overwrite``; folder scans never take ddfa's own outputs (files listed in the
manifest) as inputs, so ``--output`` may be an input folder.

**Failures.** A file that cannot be read or processed is reported in one line (control
characters escaped) and skipped; the run goes on, lists the failures in its summary and in
``DIR/.ddfa/runs/<run id>/failures.json`` (with ``summary.json``), and exits with status 1. A
full disk or a read-only output stops the run (the image in flight leaves no file behind) with
the summary and failure list still written where possible; Ctrl-C stops it with status 130,
and a re-run completes the rest.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DdfaError, ImageReadError, InputError, OutputError, one_line
from ..io.atomic import STAGING_PREFIX, TMP_PREFIX
from ..io.image import DEFAULT_LIMITS, MIB, is_image_file, is_unsupported_image_file
from ..io.manifest import RESERVED

EPILOG = """\
examples:
  ddfa align photo.jpg --output out
  ddfa align photos/ more.jpg --output out --outputs 2d_sparse --max-faces 1
  ddfa align photos/ --recursive --crop-policy landmarks --assets /path/to/assets --output out
  ddfa align photo.jpg --crop-policy landmarks --refine full --output out

output names: DIR/<key>.json and DIR/<key>_<output>.png, where <key> is the input's path
relative to the common folder of all inputs (a single photo: its file name, suffix kept).
DIR/.ddfa/index.jsonl records each input's outputs and status; a re-run skips the images it
lists as done (use --overwrite to redo them). Each run's failures are listed in
DIR/.ddfa/runs/<run id>/failures.json.
"""

#: errors after which no further image can be written: stop the batch
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def register(subparsers) -> argparse.ArgumentParser:
    from ..pipeline.refine import REFINE_MODES
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
    parser.add_argument("--refine", choices=REFINE_MODES, default="none",
                        help="test-time refinement: also regress the mirrored crop (flip) and jittered crops "
                        "(full) and combine them; adds uncertainty and confidence to the JSON (default: none)")
    parser.add_argument("--max-faces", type=int, default=None, metavar="N",
                        help="keep at most N faces per image, best score first")
    parser.add_argument("--recursive", action="store_true", help="also search sub-folders of folder arguments")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo images the manifest lists as done, and replace files at output names that "
                        "ddfa did not write (inputs are never replaced)")
    limits = parser.add_argument_group("limits (inputs beyond them are refused, before decoding)")
    limits.add_argument("--max-pixels", type=_count, default=DEFAULT_LIMITS.max_pixels, metavar="N",
                        help=f"largest image in pixels, read from the file header (default: "
                        f"{DEFAULT_LIMITS.max_pixels:,}; 12e6 and 12M also work)")
    limits.add_argument("--max-file-size", type=_megabytes, default=DEFAULT_LIMITS.max_file_size, metavar="MB",
                        help=f"largest image file in MiB (default: {DEFAULT_LIMITS.max_file_size // MIB})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--sequential", action="store_true",
                        help="one image after the other (default for several images: reading, the networks and "
                        "writing overlap in three threads, the networks on all cores but one unless --threads)")
    add_common_model_options(parser)
    parser.set_defaults(func=run)
    return parser


def _count(text: str) -> int:
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, got {text!r}") from None
    if not (1 <= value < 1e15):
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return int(value)


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in MiB, got {text!r}") from None
    if not (0 < value < 1e9):
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB, got {text!r}")
    return max(1, int(value * MIB))


# ---------------------------------------------------------------------- inputs
@dataclass
class Scan:
    """What a scan of the command-line paths found.

    Attributes:
        files: absolute paths of the files to process, in order, without duplicates.
        failures: ``(path, reason)`` of things that look like inputs but cannot be: missing
            paths, broken links, link loops, unlistable folders, unsupported image formats.
        ignored: ``(path, reason)`` of what was left alone on purpose: non-image files,
            ddfa's own outputs and temporary files, sub-folders without ``--recursive``.
    """

    files: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def scan_inputs(paths: list[str], recursive: bool = False, *, exclude: set[Path] | frozenset = frozenset(),
                reserved: Path | None = None) -> Scan:
    """Expand folders into their image files (sorted by name; symbolic links followed, with
    loops detected) and check the paths.

    Args:
        paths: files and folders as given.
        recursive: also search sub-folders.
        exclude: absolute paths never taken as inputs (ddfa's outputs listed in the manifest).
        reserved: the output's ``.ddfa`` folder, never searched.
    """
    scan = Scan()
    seen: set[str] = set()
    excluded = {os.path.normcase(str(p)) for p in exclude}

    def add(path: str, explicit: bool) -> None:
        full = os.path.abspath(path)
        if full in seen:
            return
        if os.path.normcase(full) in excluded:
            scan.ignored.append((path, "an output of ddfa (listed in the manifest)"))
            return
        name = os.path.basename(full)
        if name.startswith((TMP_PREFIX, STAGING_PREFIX)):
            scan.ignored.append((path, "a temporary file of ddfa"))
            return
        seen.add(full)
        scan.files.append(full)

    def walk(folder: str, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            scan.failures.append((folder, f"cannot list the folder ({exc.strerror or exc})"))
            return
        for entry in entries:
            full = os.path.join(folder, entry.name)
            if entry.name.startswith((TMP_PREFIX, STAGING_PREFIX)):
                continue  # ddfa's own temporary files and folders, possibly of a run in progress
            try:
                info = os.stat(full)
            except FileNotFoundError:
                if entry.is_symlink():
                    scan.failures.append((full, "broken symbolic link (its target does not exist)"))
                continue  # removed while scanning
            except OSError as exc:
                reason = "symbolic link loop" if exc.errno == errno.ELOOP else f"cannot access ({exc.strerror or exc})"
                scan.failures.append((full, reason))
                continue
            if stat.S_ISDIR(info.st_mode):
                if reserved is not None and os.path.abspath(full) == str(reserved):
                    continue
                if entry.name == RESERVED:
                    scan.ignored.append((full, f"a {RESERVED} folder (reserved for ddfa's run records)"))
                    continue
                if not recursive:
                    scan.ignored.append((full, "a sub-folder (use --recursive to search it)"))
                    continue
                ident = (info.st_dev, info.st_ino)
                if ident in ancestors:
                    scan.failures.append((full, "symbolic link loop (links back to a folder being searched)"))
                    continue
                walk(full, ancestors + (ident,))
            elif is_image_file(full):
                add(full, False)
            elif is_unsupported_image_file(full):
                scan.failures.append((full, f"unsupported image format ({Path(full).suffix.lower()}); "
                                            "convert it to JPEG or PNG"))
            else:
                scan.ignored.append((full, "not an image file"))

    for raw in paths:
        try:
            info = os.stat(raw)
        except FileNotFoundError:
            reason = "broken symbolic link (its target does not exist)" if os.path.islink(raw) else \
                "no such file or folder"
            scan.failures.append((raw, reason))
            continue
        except OSError as exc:
            reason = "symbolic link loop" if exc.errno == errno.ELOOP else f"cannot access ({exc.strerror or exc})"
            scan.failures.append((raw, reason))
            continue
        if stat.S_ISDIR(info.st_mode):
            before = len(scan.files)
            walk(raw, ((info.st_dev, info.st_ino),))
            if len(scan.files) == before and not any(f[0].startswith(raw) for f in scan.failures):
                scan.failures.append((raw, "folder contains no image files"))
        else:
            add(raw, True)  # named explicitly: tried whatever its suffix (and refused if not an image)
    return scan


def collect_inputs(paths: list[str], recursive: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders into their image files; missing paths become failures (see :func:`scan_inputs`)."""
    scan = scan_inputs(paths, recursive)
    return [Path(p) for p in scan.files], scan.failures


def input_keys(files: list[str]) -> list[str]:
    """Each file's path relative to the common root of all files, ``/``-separated: the stable,
    unique base name of its outputs."""
    if not files:
        return []
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    return [PurePosixPath(*Path(os.path.relpath(f, root)).parts).as_posix() for f in files]


# ---------------------------------------------------------------------- the run
@dataclass
class _Totals:
    aligned: int = 0
    faces: int = 0
    done_before: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None
    interrupted: bool = False
    times: dict[str, float] = field(default_factory=dict)


def run(args) -> int:
    from ..io.atomic import ensure_folder
    from ..io.image import InputLimits
    from ..io.manifest import Manifest
    from ..nets.engines import choose_backend, resolve_precision
    from ..pipeline import AlignOptions
    from ..render.outputs import check_output_names
    from .main import base_options_from_args, detector_options_from_args, keep_until_exit

    # 1. everything that can be checked without touching the disk or the model
    outputs = [] if args.outputs.strip() in ("", "none") else [s.strip() for s in args.outputs.split(",") if s.strip()]
    outputs = check_output_names(outputs)
    if args.max_faces is not None and args.max_faces < 1:
        raise InputError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.detector in (None, "none"):
        raise InputError("--detector none: ddfa align has no way to take boxes; choose a detector plug-in")
    limits = InputLimits(max_pixels=args.max_pixels, max_file_size=args.max_file_size)
    options = AlignOptions(crop_policy=args.crop_policy, max_faces=args.max_faces, limits=limits,
                           refine=args.refine)
    base = base_options_from_args(args)
    engine = choose_backend(base.backend, base.device)
    # the number formats the networks will run in: bf16 results are not the f32 ones, so a re-run
    # asking for another format redoes the images (the f32 engines agree to 1e-3 px: not a setting)
    precision = {"detector": resolve_precision(base.precision, engine),
                 "regressor": resolve_precision(base.precision, engine, int8=True)}
    detector_options = detector_options_from_args(args)
    # 2. the output folder, before any computing
    out_dir = ensure_folder(Path(args.output).absolute())
    manifest = Manifest(out_dir)
    # 3. the inputs
    scan = scan_inputs(args.paths, args.recursive, exclude=manifest.all_outputs(), reserved=manifest.folder)
    totals = _Totals(failures=list(scan.failures))
    settings = {"model": args.model, "outputs": outputs, "crop_policy": options.crop_policy,
                "max_faces": options.max_faces, "detector": args.detector, "detector_options": detector_options,
                "precision": precision}
    if options.refine != "none":  # (absent without refinement: earlier manifests stay valid)
        settings["refine"] = options.refine
    todo = []
    for path, key in zip(scan.files, input_keys(scan.files)):
        if PurePosixPath(key).parts[0] == RESERVED:
            totals.failures.append((path, f"inputs under a {RESERVED} folder are not taken (reserved for ddfa's run "
                                          "records)"))
        elif not args.overwrite and manifest.is_done(key, path, settings):
            totals.done_before += 1
        else:
            todo.append((path, key))
    # 4. the model, only when there is something to do (a model that cannot be loaded is one error line)
    aligner = None
    if todo:
        from ..detect.base import create_detector
        from ..pipeline import FaceAligner
        from ..pipeline.throughput import pipeline_threads

        if len(todo) > 1 and not args.sequential and base.threads is None:
            base = base.replace(threads=pipeline_threads())  # throughput mode: a core for reading and writing
        if len(todo) >= KERNELS_FROM_IMAGES:  # the compiled visibility kernels pay for their loading
            from ..render.visibility import load_compiled_kernels_in_background

            load_compiled_kernels_in_background()
        # the detector first, told the first photo's size: its network gets ready (OpenVINO
        # imports a compiled model per input shape) while the regressor and the 3DMM load
        detector = create_detector(args.detector, base_options=base, options=detector_options)
        first_size, prepare = _header_size(todo[0][0]), getattr(detector, "prepare", None)
        if first_size is not None and prepare is not None:
            prepare([first_size])
        aligner = FaceAligner(model=args.model, detector=detector, base_options=base, options=options)
    # 5. the images; the run record whatever happens
    run_folder = manifest.new_run_folder()
    started = time.time()
    try:
        if aligner is not None:
            _align_all(args, scan, todo, aligner, outputs, settings, out_dir, manifest, totals)
    finally:
        _finish(args, scan, totals, out_dir, run_folder, started, outputs, {"backend": engine, "precision": precision})
        keep_until_exit(aligner)
    if totals.interrupted:
        return 130
    return 1 if totals.failures or totals.stopped else 0


def _header_size(path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file from its header (first MiB), or None when it cannot
    be read there (the image is then checked, and refused, where it is read)."""
    from ..io.probe import HeaderError, probe_image

    try:
        with open(path, "rb") as handle:
            header = probe_image(handle.read(1 << 20))
    except (OSError, HeaderError):
        return None
    return header.height, header.width


def encode_for_output(outputs: list[str], image, faces) -> dict[str, bytes]:
    """Everything of one image's results that is CPU work before any file is written: the
    landmarks' visibility the JSON needs (from the dense mesh, 10-20 ms a face; cached on each
    face) and the image outputs drawn and PNG-encoded (:func:`ddfa.render.outputs.encode_image_outputs`;
    ~0.4 s for a 12-megapixel overlay). In throughput mode the network's thread and the writer
    share it (``share`` of :func:`ddfa.pipeline.throughput.pipelined`), so that both are equally busy."""
    from ..render.outputs import encode_image_outputs

    for face in faces:
        if face.model is not None:  # (as Face.to_dict)
            face.landmarks_visible  # noqa: B018  (computed now, cached on the face)
    return encode_image_outputs(outputs, image, faces)


#: runs of at least this many images load numba's visibility kernels (0.5-0.7 s, ~8 s the first
#: time on a machine) to save ~8 ms per face; shorter runs compute visibility in numpy
KERNELS_FROM_IMAGES = 50


def _align_all(args, scan, todo, aligner, outputs, settings, out_dir, manifest, totals) -> None:
    from contextlib import closing

    from ..io.atomic import output_error
    from ..pipeline.throughput import pipelined, sequential

    input_set = {os.path.normcase(p) for p in scan.files}
    bar: Any = _NoBar()
    if not (args.quiet or len(todo) < 2):  # tqdm only when a bar is shown (its import is ~0.05 s)
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", file=sys.stderr, dynamic_ncols=True)
    # throughput mode (ddfa.pipeline.throughput): reading, the networks and writing overlap in three
    # threads; the outcomes come back in input order and are handled here as one after another would be
    stages = sequential if getattr(args, "sequential", False) or len(todo) < 2 else pipelined

    def read(job):
        return _read_one(job[0], aligner)

    encoded: dict[str, dict[str, bytes]] = {}  # per input key, its image outputs encoded by ``share``

    def process(job, read_data):
        return aligner(read_data[0].image)

    def share(job, read_data, faces):
        encoded[job[1]] = encode_for_output(outputs, read_data[0].image, faces)

    def write(job, read_data, faces):
        path, key = job
        data, info = read_data
        _write_one(path, key, data, info, faces, aligner, outputs, settings, out_dir, manifest, input_set,
                   args.overwrite, encoded.pop(key, None))

    try:
        with closing(stages(todo, read, process, write, share=share)) as outcomes:
            for out in outcomes:
                path, key = out.item
                totals.times[path] = sum(out.seconds.values())
                bar.update(1)
                exc = out.error
                if isinstance(exc, OSError):  # OutputError, or a writer's own OSError (e.g. numpy's on a full disk)
                    error = output_error(exc, exc.filename or path)
                    _fail(totals, bar, manifest, key, path, str(error))
                    if error.errno in _FATAL_ERRNOS:
                        totals.stopped = f"stopped: {error}"
                        break
                    continue
                if isinstance(exc, DdfaError):
                    _fail(totals, bar, manifest, key, path, str(exc))
                    continue
                if isinstance(exc, MemoryError):
                    _fail(totals, bar, manifest, key, path, f"{path}: out of memory")
                    continue
                if exc is not None:
                    detail = str(exc).strip().splitlines()
                    _fail(totals, bar, manifest, key, path,
                          f"{path}: internal error {type(exc).__name__}: {detail[-1] if detail else ''}")
                    continue
                notes = out.data[0].warnings
                totals.aligned += 1
                totals.faces += len(out.result)
                totals.warnings += [(path, note) for note in notes]
                for note in notes:
                    bar.write(one_line(f"ddfa: warning: {path}: {note}"), file=sys.stderr)
                bar.set_postfix(faces=totals.faces, failed=len(totals.failures), refresh=False)
    except KeyboardInterrupt:
        totals.interrupted = True
    finally:
        bar.close()


class _NoBar:
    """What ``ddfa align`` uses of a tqdm bar, for runs that show none."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def write(message: str, file=None) -> None:
        print(message, file=file or sys.stdout)


def _read_one(path, aligner):
    """Stage 1: the decoded image (with its warnings) and the file's stat."""
    from ..io.image import read_image_data

    data = read_image_data(path, limits=aligner.options.limits)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ImageReadError(f"{path}: disappeared while being read ({exc.strerror or exc})") from None
    return data, info


def _write_one(path, key, data, info, faces, aligner, outputs, settings, out_dir, manifest, input_set, overwrite,
               encoded=None):
    """Stage 3: the result JSON and outputs (image outputs already ``encoded`` by
    :func:`encode_for_output`, if given), staged and moved in place with their manifest lines."""
    from ..io.atomic import Staging, output_error
    from ..io.results import image_result, write_json
    from ..render.outputs import stage_outputs

    result = image_result(path, data.image.shape, faces, aligner.regressor.name)
    result["warnings"] = data.warnings
    rel_folder = PurePosixPath(key).parent
    name = PurePosixPath(key).name
    folder = out_dir / rel_folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, folder, "cannot create the output folder") from None
    stage = Staging(folder)
    try:
        staged = stage_outputs(outputs, data.image, faces, stage.dir, name, encoded=encoded)
        write_json(stage.path(f"{name}.json"), result)
        order = staged + [f"{name}.json"]  # the result JSON last
        rel = [(rel_folder / n).as_posix() for n in order]
        _check_targets(key, path, rel, out_dir, manifest, input_set, overwrite)
        with _deferred_interrupt():  # the files moved and the manifest saying so: all or none of it
            manifest.append(key, path, "writing", rel, run=manifest.run_id)
            stage.commit(order)
            stale = manifest.owned.get(key, set()) - set(rel)
            for old in stale:  # outputs of an earlier run of this key that this run did not write again
                try:
                    (out_dir / old).unlink()
                except OSError:
                    pass
            manifest.append(key, path, "done", rel, run=manifest.run_id, settings=settings, size=info.st_size,
                            mtime_ns=info.st_mtime_ns, faces=len(faces), warnings=data.warnings)
    finally:
        with _deferred_interrupt():
            stage.discard()


@contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then raise it: for the few file moves and
    manifest lines that must happen together. Only in the main thread (elsewhere: no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _check_targets(key, path, rel, out_dir, manifest, input_set, overwrite) -> None:
    """Refuse to replace an input, or a file ddfa did not write for this key (unless --overwrite)."""
    record = manifest.latest.get(key)
    if record is not None and record.input and record.input != path and not overwrite:
        raise OutputError(f"{path}: its outputs ({out_dir / rel[-1]}, ...) hold the results of another input, "
                          f"{record.input}; use another --output, or --overwrite to replace them")
    owned = manifest.owned.get(key, set())
    for target_rel in rel:
        target = out_dir / target_rel
        if os.path.normcase(str(target)) in input_set:
            raise OutputError(f"{path}: its output {target} would replace an input of this run; "
                              "choose another --output")
        if target_rel in owned or overwrite or not os.path.lexists(target):
            continue
        other = manifest.owner(target_rel)
        whose = f"the results of {manifest.latest[other].input}" if other else "a file ddfa did not write"
        raise OutputError(f"{path}: its output {target} exists and is {whose}; move it, choose another --output, "
                          "or use --overwrite")


def _fail(totals, bar, manifest, key, path, message) -> None:
    totals.failures.append((path, message))
    bar.write(one_line(f"ddfa: skipped {message if message.startswith(path) else path + ': ' + message}"),
              file=sys.stderr)
    try:
        record = manifest.latest.get(key)
        if record is None or record.status != "done" or record.input != path:
            manifest.append(key, path, "failed", run=manifest.run_id, error=message)
    except OutputError:
        pass  # the disk is full: the failure list below still says it


def _finish(args, scan, totals, out_dir, run_folder, started, outputs, engine: dict[str, Any]) -> None:
    """Write the run records (where possible) and print the summary (``engine``: the backend and
    the networks' number formats, as resolved on this machine)."""
    from ..io.results import write_json

    failures = [{"path": p, "error": e} for p, e in totals.failures]
    summary = {
        "command": "align", "paths": list(args.paths), "output": str(out_dir), "outputs": outputs,
        "model": args.model, **engine, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3), "inputs": len(scan.files), "aligned": totals.aligned,
        "faces": totals.faces, "failures": len(failures), "already_done": totals.done_before,
        "interrupted": totals.interrupted, "stopped": totals.stopped,
        "seconds_per_image": {p: round(t, 4) for p, t in totals.times.items()},
        "warnings": [{"path": p, "warning": w} for p, w in totals.warnings],
        "ignored": [{"path": p, "reason": r} for p, r in scan.ignored],
    }
    record_note = f"run record in {run_folder}{os.sep}"
    try:
        write_json(run_folder / "failures.json", failures)
        write_json(run_folder / "summary.json", summary)
    except OutputError as exc:
        record_note = f"could not write the run record ({exc})"
    parts = [f"{totals.aligned} image(s) aligned", f"{totals.faces} face(s) found", f"{len(failures)} failure(s)"]
    if totals.done_before:
        parts.append(f"{totals.done_before} already done (skipped; --overwrite redoes them)")
    if scan.ignored:
        parts.append(f"{len(scan.ignored)} path(s) ignored (listed in summary.json)")
    lines = [f"ddfa align: {', '.join(parts)}; results in {out_dir}{os.sep}; {record_note}"]
    if totals.stopped:
        lines.append(f"  {totals.stopped}; re-run to complete the rest")
    if totals.interrupted:
        lines.append("  interrupted; every file present is complete, re-run to complete the rest")
    for path, error in totals.failures:
        lines.append(f"  failed: {error if error.startswith(path) else path + ': ' + error}")
    try:
        for line in lines:
            print(one_line(line))
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
