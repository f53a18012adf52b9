"""Throughput mode for many images: decoding, the networks and writing overlap.

A folder of photos processed one stage after the other takes the *sum* of decoding, alignment
and writing per image. :func:`pipelined` runs the three stages in three threads joined by small
bounded queues, so while the networks work on image *i*, image *i+1* is being decoded and the
results of image *i-1* written: a folder runs at the speed of its slowest stage. JPEG/PNG
decoding and encoding (OpenCV) and inference (onnxruntime, OpenVINO, torch) release Python's
GIL, so the threads really overlap. Results come back in input order, each with its error if a
stage failed (the other images go on), and with the seconds each stage took.

    >>> for out in pipelined(paths, read_image, aligner, write):
    ...     print(out.item, out.error or len(out.result))
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_DONE = object()


@dataclass
class Outcome(Generic[T]):
    """One item through the pipeline.

    Attributes:
        index: its position in the input.
        item: the input item.
        data: what ``decode`` returned (None if it failed).
        result: what ``process`` returned (None if a stage before it failed).
        error: the exception a stage raised, or None.
        seconds: time spent in each stage (``"decode"``, ``"process"``, ``"write"``).
    """

    index: int
    item: T
    data: Any = None
    result: Any = None
    error: BaseException | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def pipeline_threads() -> int:
    """Engine threads for throughput mode: all cores but one, which reading and writing use
    (on a 2-core machine, measured: an engine on both cores is stalled by the other two stages)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _timed(outcome: Outcome, stage: str, fn: Callable, *args) -> Any:
    start = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # recorded on the item; the pipeline goes on
        outcome.error = exc
        return None
    finally:
        outcome.seconds[stage] = time.perf_counter() - start


def sequential(items: Iterable[T], decode: Callable[[T], Any], process: Callable[[T, Any], Any],
               write: Callable[[T, Any, Any], None]) -> Generator[Outcome[T], None, None]:
    """The same contract as :func:`pipelined`, one stage after the other (the baseline)."""
    for index, item in enumerate(items):
        out: Outcome[T] = Outcome(index, item)
        out.data = _timed(out, "decode", decode, item)
        if out.error is None:
            out.result = _timed(out, "process", process, item, out.data)
        if out.error is None:
            _timed(out, "write", write, item, out.data, out.result)
        yield out


def pipelined(items: Iterable[T], decode: Callable[[T], Any], process: Callable[[T, Any], Any],
              write: Callable[[T, Any, Any], None], *, depth: int = 3) -> Generator[Outcome[T], None, None]:
    """Run ``decode(item)``, ``process(item, data)`` and ``write(item, data, result)`` for every
    item, the three stages in their own threads; yield the outcomes in input order.

    Args:
        items: the inputs (paths, ...).
        decode: stage 1, e.g. reading the image.
        process: stage 2, e.g. the aligner (one call at a time: the engine gets the cores).
        write: stage 3, e.g. JSON and overlays.
        depth: items waiting between two stages (bounds the memory held: about ``2 * depth``
            decoded images).

    Closing the generator early (or an exception in the consumer) stops the threads.
    """
    decoded: queue.Queue = queue.Queue(maxsize=depth)
    processed: queue.Queue = queue.Queue(maxsize=depth)
    finished: queue.Queue = queue.Queue()
    stop = threading.Event()

    def put(q: queue.Queue, value) -> bool:
        while not stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue):
        while not stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _DONE

    def decoder():
        for index, item in enumerate(items):
            if stop.is_set():
                break
            out: Outcome[T] = Outcome(index, item)
            out.data = _timed(out, "decode", decode, item)
            if not put(decoded, out):
                return
        put(decoded, _DONE)

    def processor():
        while (out := get(decoded)) is not _DONE:
            if out.error is None:
                out.result = _timed(out, "process", process, out.item, out.data)
            if not put(processed, out):
                return
        put(processed, _DONE)

    def writer():
        while (out := get(processed)) is not _DONE:
            if out.error is None:
                _timed(out, "write", write, out.item, out.data, out.result)
            finished.put(out)
        finished.put(_DONE)

    threads = [threading.Thread(target=fn, name=f"ddfa-{fn.__name__}", daemon=True)
               for fn in (decoder, processor, writer)]
    for thread in threads:
        thread.start()
    try:
        while (out := finished.get()) is not _DONE:
            yield out
    finally:
        stop.set()
        for thread in threads:
            thread.join()


__all__ = ["Outcome", "pipeline_threads", "pipelined", "sequential"]
