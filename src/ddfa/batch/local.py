"""``--engine local``: the batch plan on a process pool of this machine's cores (no Ray).

Each worker process builds one :class:`~ddfa.FaceAligner` (``threads`` = cores / workers) and
runs :func:`~ddfa.batch.worker.align_paths` on batches of ``batch_size`` images; the driver
receives the results and writes the shards (workers never write). Workers ignore SIGINT: Ctrl-C
reaches the driver, which commits what it has and stops them.

A worker that dies (a decoder crash, the OOM killer) takes its pool down: the images that were
in flight are then retried one at a time in a fresh pool, and an image that kills a worker on its
own is recorded as a failure (:class:`WorkerCrashed`) instead of stopping the run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import DdfaError
from ..io.batch import ImageResult
from .worker import AlignerSpec, align_paths, cpu_count, set_cpu_threads

#: test hook: a worker exits abruptly on an image whose key contains this text
CRASH_TEST_ENV = "DDFA_BATCH_TEST_CRASH_ON"

_ALIGNER = None


class WorkerCrashed(DdfaError):
    """The worker process died while processing this image."""


class WorkerInitError(DdfaError):
    """A worker could not build its aligner (the run stops with this message)."""


def _init_worker(spec: AlignerSpec, threads: int) -> None:
    global _ALIGNER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_cpu_threads(threads)
    try:
        _ALIGNER = spec.with_threads(threads).build()
    except Exception as exc:  # reported by the first task, not as a dead pool
        _ALIGNER = WorkerInitError(f"worker {os.getpid()}: {type(exc).__name__}: {exc}")


def _work(paths: list[str]) -> list[ImageResult]:
    if isinstance(_ALIGNER, Exception):
        raise _ALIGNER
    crash_on = os.environ.get(CRASH_TEST_ENV)
    if crash_on and any(crash_on in p for p in paths):
        os._exit(70)
    return align_paths(_ALIGNER, paths)


def _start(spec: AlignerSpec, workers: int, threads: int) -> ProcessPoolExecutor:
    # spawn: the parent may hold onnxruntime/torch thread pools that must not be forked
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(spec, threads))


def _stop(pool: ProcessPoolExecutor, *, graceful: bool) -> None:
    if graceful:
        pool.shutdown(wait=True)
        return
    # ProcessPoolExecutor has no public way to stop busy workers (before Python 3.14)
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)


def plan_workers(num_images: int, batch_size: int, workers: int | None) -> tuple[int, int]:
    """``(workers, threads per worker)`` for a run: no more workers than batches or cores."""
    cores = cpu_count()
    count = max(1, min(workers or cores, -(-num_images // batch_size)))
    return count, max(1, cores // count)


def run_local(paths: Sequence[str], spec: AlignerSpec, *, batch_size: int = 16,
              workers: int | None = None) -> Iterator[list[ImageResult]]:
    """Process ``paths`` on a pool of processes; yields each batch's results as it completes.

    Args:
        paths: image keys (see :mod:`ddfa.batch.inputs`).
        spec: the aligner every worker builds.
        batch_size: images per task (their faces share one network batch).
        workers: processes (default: the cores of this machine).
    """
    if not paths:
        return
    count, threads = plan_workers(len(paths), batch_size, workers)
    threads = spec.threads or threads
    queue = deque(list(paths[i:i + batch_size]) for i in range(0, len(paths), batch_size))
    suspects: deque[str] = deque()  # images of batches that were in flight when a worker died
    in_flight: dict[Future, tuple[list[str], bool]] = {}
    pool = _start(spec, count, threads)
    finished = False
    try:
        while queue or suspects or in_flight:
            if suspects:
                if not in_flight:  # one suspect at a time: a crash then names its image
                    key = suspects.popleft()
                    in_flight[pool.submit(_work, [key])] = ([key], True)
            else:
                while queue and len(in_flight) < 2 * count:
                    batch = queue.popleft()
                    in_flight[pool.submit(_work, batch)] = (batch, False)
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            crashed = False
            for future in done:
                batch, suspect = in_flight.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    crashed = True
                    if suspect:
                        message = f"{batch[0]}: the worker process died while processing this image"
                        yield [ImageResult.failure(batch[0], WorkerCrashed(message))]
                    else:
                        suspects.extend(batch)
                    continue
                yield results
            if crashed:  # the whole pool is gone: keep what finished, retry the rest one by one
                wait(list(in_flight))
                for future, (batch, _) in in_flight.items():
                    if future.exception() is None:
                        yield future.result()
                    else:
                        suspects.extend(batch)
                in_flight.clear()
                _stop(pool, graceful=False)
                pool = _start(spec, count, threads)
        finished = True
    finally:
        _stop(pool, graceful=finished)


__all__ = ["WorkerCrashed", "WorkerInitError", "plan_workers", "run_local"]
