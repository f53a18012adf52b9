"""The driver of a batch run: list, skip what is done, run an engine, commit shards, account.

1. List the inputs (:func:`~ddfa.batch.inputs.list_inputs`): unique image keys.
2. Open the output folder (:class:`~ddfa.io.batch.BatchOutput`): take the ``_RUNNING`` lock,
   delete what an interrupted run left (temporary files, uncommitted parts), check that the
   options that decide the rows match the folder's ``_batch.json``, remove ``_SUCCESS``.
3. Skip every key already in a committed ``images`` shard; run the engine on the rest.
4. Buffer the engine's results and commit a shard every ``shard_size`` images (or
   ``flush_seconds``), each image once: a result for a key that is not pending, or was already
   received, is dropped.
5. On Ctrl-C or an error, commit what was received, then stop the engine. When every input is
   done, write ``_SUCCESS`` with the options and counts.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import InputError
from ..io.batch import OPTIONS_FILE, SUCCESS_FILE, BatchOutput, ImageResult, results_to_tables
from .inputs import list_inputs
from .worker import AlignerSpec

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a batch runs (none of these change the rows).

    Attributes:
        engine: ``"local"`` (a process pool on this machine) or ``"ray"`` (Ray Data).
        address: Ray cluster address (engine ``"ray"``; default ``$RAY_ADDRESS`` or a local Ray).
        batch_size: images per task; their faces share one network batch.
        workers: worker processes (local) or CPU actors (ray); default: all cores / cluster CPUs.
        regress_workers: separate regression actors (ray; default one per GPU with cuda, else 0).
        shard_size: images per committed shard (the unit a crash can lose).
        flush_seconds: commit at least this often, even with fewer images.
        progress: draw a progress bar on stderr.
    """

    engine: Engine = "local"
    address: str | None = None
    batch_size: int = 16
    workers: int | None = None
    regress_workers: int | None = None
    shard_size: int = 2000
    flush_seconds: float = 60.0
    progress: bool = True

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        for name in ("batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("workers", "regress_workers"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "workers" else 0):
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.address and self.engine != "ray":
            raise InputError("--address needs --engine ray")


@dataclass
class BatchSummary:
    """What a run did and what the output folder holds for its inputs.

    Attributes:
        output: the output folder.
        complete: every input is in a committed shard (``_SUCCESS`` was written).
        inputs: unique input images; ``duplicates``: repeated entries dropped.
        skipped: inputs already done by an earlier run.
        processed, faces, no_face, failed: this run's images, faces, images without a face,
            failed images.
        seconds: this run's wall time; ``startup_seconds``: until the first result arrived
            (listing, starting workers and loading models, and the first batch).
        workers_seen: worker processes that sent results.
        steady_since_seconds, steady_since_images: when the last worker to start sent its first
            result, and the images received by then; ``last_result_seconds``: time of the last
            result (for :attr:`steady_images_per_s`).
        totals: counts over the output folder for these inputs (``images``,
            ``images_with_faces``, ``images_without_faces``, ``images_failed``, ``faces``,
            ``shards``), filled when ``complete``.
        interrupted: stopped by Ctrl-C.
        missing: inputs not in the output folder after the run (0 when ``complete``).
        worker_cpu_seconds: CPU time the workers spent on this run's images (start-up excluded):
            :attr:`images_per_cpu_second` is what one core does, whatever else runs on it.
    """

    output: str
    complete: bool = False
    inputs: int = 0
    duplicates: int = 0
    skipped: int = 0
    processed: int = 0
    faces: int = 0
    no_face: int = 0
    failed: int = 0
    seconds: float = 0.0
    startup_seconds: float | None = None
    workers_seen: int = 0
    steady_since_seconds: float | None = None
    steady_since_images: int = 0
    last_result_seconds: float | None = None
    totals: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    missing: int = 0
    worker_cpu_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_images_per_s(self) -> float | None:
        """Images per second once every worker runs (start-up excluded): from the first result of
        the last worker to start to the last result; None when nothing came after it."""
        if self.steady_since_seconds is None or self.last_result_seconds is None:
            return None
        span = self.last_result_seconds - self.steady_since_seconds
        count = self.processed - self.steady_since_images
        return count / span if span > 0 and count > 0 else None

    @property
    def images_per_cpu_second(self) -> float | None:
        return self.processed / self.worker_cpu_seconds if self.worker_cpu_seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        steady, per_cpu = self.steady_images_per_s, self.images_per_cpu_second
        return {**asdict(self), "images_per_s": round(self.images_per_s, 3), "faces_per_s": round(self.faces_per_s, 3),
                "steady_images_per_s": None if steady is None else round(steady, 3),
                "images_per_cpu_second": None if per_cpu is None else round(per_cpu, 3)}


def _engine(options: BatchOptions, pending: list[str], spec: AlignerSpec) -> Iterator[list[ImageResult]]:
    if options.engine == "ray":
        from .ray_engine import run_ray

        return run_ray(pending, spec, batch_size=options.batch_size, workers=options.workers,
                       regress_workers=options.regress_workers, address=options.address)
    from .local import run_local

    return run_local(pending, spec, batch_size=options.batch_size, workers=options.workers)


def _version() -> str:
    from .. import __version__

    return __version__


def run_batch(inputs: str | Sequence[str], output: str, spec: AlignerSpec | None = None,
              options: BatchOptions | None = None, *,
              on_progress: Callable[[BatchSummary], None] | None = None) -> BatchSummary:
    """Align every face of every input image into Parquet shards under ``output``; resumable.

    Args:
        inputs: folders, globs, list files or images, local or fsspec URIs (see
            :mod:`ddfa.batch.inputs`).
        output: output folder or URI (layout and schema: :mod:`ddfa.io.batch`).
        spec: model, detector, runtime and crop options (:class:`AlignerSpec`).
        options: engine and sizes (:class:`BatchOptions`).
        on_progress: called with the running summary after every received batch.

    Returns:
        The :class:`BatchSummary`. Re-running the same call after a crash or Ctrl-C processes
        only the images that were not committed.

    Raises:
        InputError: bad inputs or options, or options that differ from those ``output`` was
            written with.
        KeyboardInterrupt: after committing what was received.
    """
    spec = spec or AlignerSpec()
    options = options or BatchOptions()
    started = time.perf_counter()
    listing = list_inputs(inputs)
    out = BatchOutput(output)
    summary = BatchSummary(output=str(output), inputs=len(listing.paths), duplicates=listing.duplicates)
    out.acquire()
    try:
        out.cleanup()
        recorded = out.read_json(OPTIONS_FILE)
        wanted = spec.result_options()
        if recorded is not None and recorded.get("options") != wanted:
            before = recorded.get("options") or {}
            differ = "; ".join(f"{k}: {before.get(k)!r} there, {wanted.get(k)!r} now"
                               for k in sorted(set(wanted) | set(before)) if wanted.get(k) != before.get(k))
            raise InputError(f"{output}: was written with other options ({differ}); use the same options to "
                             "resume, or another output folder")
        if recorded is None:
            out.write_json(OPTIONS_FILE, {"ddfa_version": _version(), "options": wanted})
        out.remove(SUCCESS_FILE)
        done = set(out.read("images", ["path"]).column("path").to_pylist())
        pending = [p for p in listing.paths if p not in done]
        summary.skipped = len(listing.paths) - len(pending)
        if pending:
            _process(pending, out, spec, options, summary, started, on_progress)
        summary.seconds = time.perf_counter() - started
        _finish(listing.paths, inputs, out, spec, options, summary)
    finally:
        out.release()
    return summary


def _process(pending: list[str], out: BatchOutput, spec: AlignerSpec, options: BatchOptions,
             summary: BatchSummary, started: float, on_progress) -> None:
    from tqdm import tqdm

    spec.check()  # fail fast on bad options; a worker that cannot load the model stops the run
    model, detector = str(spec.model), str(spec.detector)  # the names FaceAligner gives them
    version = _version()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    wanted = set(pending)
    received: set[str] = set()
    workers: set[str] = set()
    buffer: list[ImageResult] = []
    seq = 0
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal seq, last_flush, buffer
        if buffer:
            tables = results_to_tables(buffer, model=model, detector=detector, version=version)
            out.write_shard(f"part-{run_id}-{seq:06d}.parquet", tables)
            seq += 1
            buffer = []
        last_flush = time.perf_counter()

    bar = tqdm(total=len(pending), unit="img", desc="ddfa batch", disable=not options.progress,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.05)
    engine = _engine(options, pending, spec)
    try:
        for results in engine:
            fresh = [r for r in results if r.path in wanted and r.path not in received]
            received.update(r.path for r in fresh)
            buffer.extend(fresh)
            now = time.perf_counter() - started
            if summary.startup_seconds is None:
                summary.startup_seconds = now
            summary.last_result_seconds = now
            summary.processed += len(fresh)
            new_workers = {r.worker for r in fresh if r.worker} - workers
            if new_workers:  # the pool grew: steady state starts (again) now
                workers.update(new_workers)
                summary.workers_seen = len(workers)
                summary.steady_since_seconds, summary.steady_since_images = now, summary.processed
            summary.faces += sum(r.num_faces for r in fresh)
            summary.no_face += sum(1 for r in fresh if r.ok and not r.num_faces)
            summary.failed += sum(1 for r in fresh if not r.ok)
            summary.worker_cpu_seconds += sum(r.cpu_seconds for r in fresh)
            summary.seconds = time.perf_counter() - started
            bar.update(len(fresh))
            rate = bar.format_dict.get("rate") or summary.processed / max(bar.format_dict.get("elapsed") or 1, 1e-9)
            faces_rate = rate * summary.faces / max(summary.processed, 1)  # img/s x faces per image
            bar.set_postfix_str(f"{faces_rate:.1f} faces/s, {summary.faces} faces, {summary.failed} failed",
                                refresh=False)
            if on_progress is not None:
                on_progress(summary)
            if len(buffer) >= options.shard_size or time.perf_counter() - last_flush >= options.flush_seconds:
                flush()
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        try:
            flush()  # commit everything received, also on Ctrl-C or an engine error
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                close()
            bar.close()


def _finish(paths: list[str], inputs, out: BatchOutput, spec: AlignerSpec, options: BatchOptions,
            summary: BatchSummary) -> None:
    """Count what the folder holds for ``paths``; write ``_SUCCESS`` when all are there."""
    table = out.read("images", ["path", "num_faces", "status"])
    keys = set(paths)
    rows = [r for r in table.to_pylist() if r["path"] in keys]
    done = {r["path"] for r in rows}
    summary.missing = len(keys - done)
    summary.complete = not summary.missing and not summary.interrupted
    if not summary.complete:
        return
    ok = [r for r in rows if r["status"] == "ok"]
    summary.totals = {
        "images": len(rows),
        "images_with_faces": sum(1 for r in ok if r["num_faces"]),
        "images_without_faces": sum(1 for r in ok if not r["num_faces"]),
        "images_failed": len(rows) - len(ok),
        "faces": int(sum(r["num_faces"] for r in ok)),
        "shards": len(out.committed()),
        "images_not_in_inputs": table.num_rows - len(rows),
    }
    out.write_json(SUCCESS_FILE, {
        "ddfa_version": _version(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": [inputs] if isinstance(inputs, str) else list(inputs),
        "options": {**spec.result_options(), "device": spec.device, "backend": spec.backend, "threads": spec.threads,
                    "assets": spec.assets, **{k: v for k, v in asdict(options).items() if k != "progress"}},
        "counts": {"inputs": summary.inputs, "duplicate_inputs": summary.duplicates, **summary.totals},
        "run": {k: v for k, v in summary.to_dict().items()
                if k in ("skipped", "processed", "faces", "no_face", "failed", "seconds", "startup_seconds",
                         "workers_seen", "images_per_s", "faces_per_s", "steady_images_per_s", "worker_cpu_seconds",
                         "images_per_cpu_second")},
    })


__all__ = ["ENGINES", "BatchOptions", "BatchSummary", "Engine", "run_batch"]
