"""The ``ddfa`` command: one sub-command per module of :mod:`ddfa.cli`.

Each sub-command module defines ``register(subparsers) -> argparse.ArgumentParser`` (which sets
``func`` via ``set_defaults``) and a ``run(args) -> int`` exit code.

Errors end as one line on stderr, never as a traceback (unless ``--debug``):

* errors ddfa raises on purpose (:class:`ddfa.errors.DdfaError`): ``ddfa: error: <message>``,
  exit status 1;
* an operating-system error that escaped a command (disk full, permission denied, ...):
  ``ddfa: error: <file>: <cause>``, exit status 1;
* Ctrl-C, also during start-up: ``ddfa: interrupted``, exit status 130 (CPython itself ends the
  process with SIGINT instead when the interrupt passed through some C-level library code);
* anything else is a bug in ddfa: ``ddfa: internal error: ...``, exit status 70.

Control characters in messages (e.g. a newline in a file name) are escaped, so that no input
can forge or hide lines of the output.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
import typing

from ..errors import DdfaError, InputError, one_line

#: sub-command modules under ddfa.cli, in the order ``ddfa --help`` lists them
SUBCOMMANDS = ("align", "batch", "assets", "export", "benchmark", "train", "synth", "video")

DESCRIPTION = """\
ddfa: 3D dense face alignment in full pose range (3DDFA / 3DDFA_V2).

From photos, folders or videos to 68 landmarks, head pose and dense 3D faces.
Model files are read from --assets DIR or $DDFA_HOME (see `ddfa assets list`).
The 3DMM data and pretrained models are for non-commercial research use only.
"""


def chosen_command(argv: list[str]) -> str | None:
    """The sub-command ``argv`` runs, or None (none given, or top-level help asked for first)."""
    for arg in argv:
        if arg in ("-h", "--help", "--"):
            return None
        if not arg.startswith("-"):  # the top-level options (--version, --debug) take no value
            return arg if arg in SUBCOMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ddfa`` parser; with ``command``, only that sub-command's parser is built in full
    (the others are bare stand-ins), so that running one command does not import what the
    others need for their options (``ddfa video``'s codecs, ``ddfa benchmark``'s protocols)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ddfa", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ddfa {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also accepted after the command)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if command is not None and name != command:
            subparsers.add_parser(name)
            continue
        sub = importlib.import_module(f"{__package__}.{name}").register(subparsers)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error")
    return parser


def add_common_model_options(parser: argparse.ArgumentParser, *, detector: bool = True,
                             precision: str = "auto") -> None:
    """Options shared by the sub-commands that run a model: the model, the runtime context
    (:class:`~ddfa.BaseOptions`; ``precision`` is the default of ``--precision``) and, with
    ``detector``, the detector plug-in and its options."""
    from ..runtime import BACKENDS, PRECISIONS  # here, not at import: `ddfa` starts without numpy

    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mb05",
                       help="regressor: mb05, mb1, 3ddfa-v1, a registered name, or a checkpoint file (default: mb05)")
    group.add_argument("--assets", metavar="DIR", default=None,
                       help="asset directory holding the 3DDFA/ and 3DDFA_V2/ files (default: $DDFA_HOME)")
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    group.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference engine: auto = OpenVINO on CPUs with native bfloat16 (AMX, AVX-512-BF16) "
                       "when installed, else onnxruntime on CPU if installed, else torch")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads of the inference engine (default: all cores)")
    group.add_argument("--precision", default=precision, choices=PRECISIONS,
                       help="number format of the networks: auto = bf16 on OpenVINO where the CPU computes it "
                       "natively, else f32; int8 = the regressor statically quantised (costs accuracy: see "
                       f"`ddfa benchmark aflw2000-3d --precision int8`) (default: {precision})")
    if detector:
        add_detector_options(group)


def add_detector_options(group, *, compare: bool = False) -> None:
    """``--detector``, ``--det-size`` and ``--detector-option`` (see :func:`detector_options_from_args`)."""
    from ..detect import DEFAULT_DETECTOR, list_detectors

    group.add_argument("--detector", default=DEFAULT_DETECTOR,
                       help=f"face detector plug-in: {', '.join(list_detectors())} (default: {DEFAULT_DETECTOR}"
                       + ("" if compare else "; 'none' is refused where no boxes can be given") + ")")
    group.add_argument("--det-size", type=int, default=None, metavar="N",
                       help="working resolution of the detector: the longer photo side is scaled down to N pixels "
                       "for the whole-photo pass, and large photos get finer tiled passes (yunet, centerface; "
                       "default 640)")
    group.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the detector plug-in, by name (repeatable), e.g. "
                       "--detector-option score_threshold=0.6 or min_face=20")


def base_options_from_args(args: argparse.Namespace):
    """The runtime context (:class:`~ddfa.BaseOptions`) of a sub-command's options."""
    from ..runtime import resolve_base_options

    # an option not given leaves the field's default (threads: $DDFA_THREADS, else all cores)
    return resolve_base_options(assets=args.assets, device=args.device, backend=args.backend,
                                threads=getattr(args, "threads", None), precision=getattr(args, "precision", "auto"))


def detector_options_from_args(args: argparse.Namespace) -> dict:
    """``--detector-option KEY=VALUE`` pairs, each value converted to the type of the plug-in's
    option of that name.

    Raises:
        InputError: a malformed pair, an option the plug-in does not have, or a value of the
            wrong type.
    """
    return detector_options_for(args.detector, getattr(args, "detector_option", None) or [],
                                getattr(args, "det_size", None))


def detector_options_for(detector: str | None, pairs: list[str], det_size: int | None = None) -> dict:
    """The options of plug-in ``detector`` from ``KEY=VALUE`` strings and ``--det-size``."""
    if not pairs and det_size is None:
        return {}
    from ..detect.base import detector_spec

    if detector in (None, "none"):
        raise InputError("--detector-option / --det-size given with --detector none")
    spec = detector_spec(detector)
    types = typing.get_type_hints(spec.options_type) if spec.options_type is not None else {}
    out: dict = {}
    if det_size is not None:
        if "det_size" not in types:
            raise InputError(f"--det-size: detector {detector!r} has no working-resolution option"
                             + (" (it shrinks photos to fit --detector-option max_height=..., max_width=...)"
                                if "max_height" in types else ""))
        out["det_size"] = det_size
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--detector-option {pair!r}: expected KEY=VALUE")
        if key not in types:
            raise InputError(f"--detector-option {key!r}: detector {detector!r} has no such option; "
                             f"expected one of {', '.join(sorted(types)) or '(none)'}")
        out[key] = _convert(value.strip(), types[key], key)
    return out


def _convert(value: str, kind, key: str):
    """A command-line string as a value of ``kind`` (bool, int, float, str, or Optional of one)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:  # Optional[X] / X | None
        if value.lower() == "none":
            return None
        kind = args[0]
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(value)
    except ValueError:
        raise InputError(f"--detector-option {key}={value!r}: expected {getattr(kind, '__name__', kind)}") from None
    return value


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the file (if known) and the cause."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        cause += " (the disk is full)"
    return f"{exc.filename}: {cause}" if exc.filename is not None else cause


def main(argv: list[str] | None = None) -> int:
    """Run ``ddfa`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    interrupts, restore = _count_interrupts()
    try:
        parser = build_parser(chosen_command(argv))
        args = parser.parse_args(argv)
        if not hasattr(args, "func"):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _report(debug, "ddfa: interrupted")
        return 130
    except Exception as exc:
        if interrupts() or _caused_by_interrupt(exc):
            # a library turned the KeyboardInterrupt into its own error (a pybind11 module that is
            # being imported raises ImportError "initialization failed"): still Ctrl-C
            _report(debug, "ddfa: interrupted")
            return 130
        if isinstance(exc, DdfaError):
            _report(debug, f"ddfa: error: {exc}")
            return 1
        if isinstance(exc, OSError):  # not wrapped by the command: still one line naming the file
            _report(debug, f"ddfa: error: {describe_os_error(exc)}")
            return 1
        if isinstance(exc, MemoryError):
            _report(debug, "ddfa: error: out of memory")
            return 1
        detail = str(exc).strip().splitlines()
        _report(debug, f"ddfa: internal error: {type(exc).__name__}: {detail[0] if detail else ''} "
                "(a bug in ddfa; run with --debug for the traceback)")
        return 70
    finally:
        restore()


def _count_interrupts() -> tuple[typing.Callable[[], int], typing.Callable[[], None]]:
    """Count Ctrl-C from now on (still raising KeyboardInterrupt, as Python's own handler does);
    returns a function giving the count and one putting Python's handler back. Only where Python's
    default handler is in place, in the main thread (a caller's own handler is left alone)."""
    count = [0]
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return (lambda: count[0]), (lambda: None)

    def on_interrupt(signum: int, frame: object) -> None:
        count[0] += 1
        raise KeyboardInterrupt

    def restore() -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_interrupt)
    return (lambda: count[0]), restore


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``exc``'s chain of causes and contexts."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def _report(debug: bool, message: str) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    try:
        print(one_line(message), file=sys.stderr)
    except (OSError, ValueError):  # stderr closed
        pass


#: objects the commands are done with, held to the end of a ``ddfa`` process (see :func:`keep_until_exit`)
_KEPT: list[object] | None = None


def keep_until_exit(obj: object) -> None:
    """Hold ``obj`` (a :class:`~ddfa.pipeline.FaceAligner`: its compiled networks take ~15 ms to
    free) until the ``ddfa`` process ends, which frees nothing (:func:`console`). In-process
    calls of :func:`main` (tests, scripts) keep nothing."""
    if _KEPT is not None:
        _KEPT.append(obj)


def console(argv: list[str] | None = None) -> typing.NoReturn:
    """The ``ddfa`` command itself (its console script, ``python -m ddfa.cli.main``): :func:`main`,
    then the end of the process without the interpreter's teardown.

    Everything of the exit that a command's results depend on still happens, in the interpreter's
    order: non-daemon threads are waited for (OpenVINO's compile thread may be writing a compiled
    model into the cache), ``atexit`` handlers run (Ray, multiprocessing, ``weakref.finalize``,
    logging), stdout and stderr are flushed. What is skipped is freeing every module and unloading
    the native libraries (OpenVINO, onnxruntime, OpenCV, their thread pools): 40-100 ms of every
    run, a sixth of a one-photo ``ddfa align`` (``benchmarks/bench_coldstart.py``). ddfa writes
    every file atomically inside the command, so no result waits for that teardown. :func:`main`
    stays the in-process entry (tests, scripts), which returns its status.
    """
    global _KEPT
    _KEPT = []
    blas_on_one_thread(sys.argv[1:] if argv is None else argv)
    try:
        status = main(argv)
    except SystemExit as done:  # argparse's --help / usage errors
        status = _exit_status(done.code)
    _end_process(status)


#: commands that keep numpy's BLAS threads as they are: training runs torch, whose BLAS on some
#: platforms (OpenBLAS in the aarch64 wheels) would read the same setting
_OWN_BLAS_THREADS = frozenset({"train"})


def blas_on_one_thread(argv: list[str]) -> None:
    """Run numpy's BLAS on one thread in the ``ddfa`` command (unless ``OPENBLAS_NUM_THREADS`` is
    set, or the command is ``train``), before numpy is imported: that is when OpenBLAS (numpy's
    wheels) reads it.

    ddfa's numpy products are small (a face's dense mesh, 115,095 x 50 times 50: 1.3 ms on one
    thread, 0.8 ms on two), and after each threaded one OpenBLAS keeps its worker threads
    spinning, busy, for ~0.1 s: a whole core per photo that the networks and the other
    threads of the run then lack. Measured with ``/usr/bin/time`` on 40 photos (``ddfa align``,
    2 cores): 2.9 -> 1.6 CPU seconds, the same wall time when the machine is otherwise idle.
    """
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in _OWN_BLAS_THREADS and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _exit_status(code: object) -> int:
    """The exit status ``sys.exit(code)`` gives (a message is printed to stderr, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _report(False, str(code))
    return 1


def _end_process(status: int) -> typing.NoReturn:
    import atexit

    try:
        shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first (CPython 3.8+)
        if shutdown is not None:  # runs threading's own exit hooks (concurrent.futures) and joins
            shutdown()
        else:  # pragma: no cover
            for thread in threading.enumerate():
                if thread is not threading.current_thread() and not thread.daemon:
                    thread.join()
        atexit._run_exitfuncs()
    except KeyboardInterrupt:  # Ctrl-C while waiting for them: the files they write are atomic
        _report(False, "ddfa: interrupted")
        status = 130
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (ddfa ... | head): nothing more can be said there
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    console()
