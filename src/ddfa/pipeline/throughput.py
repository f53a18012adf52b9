"""Throughput mode for many images: decoding, the networks and writing overlap.

A folder of photos processed one stage after the other takes the *sum* of decoding, alignment
and writing per image. :func:`pipelined` runs the three stages in three threads joined by small
bounded queues, so while the networks work on image *i*, image *i+1* is being decoded and the
results of image *i-1* written: a folder runs at the speed of its slowest stage. JPEG/PNG
decoding and encoding (OpenCV) and inference (onnxruntime, OpenVINO, torch) release Python's
GIL, so the threads really overlap. Results come back in input order, each with its error if a
stage failed (the other images go on), and with the seconds each stage took. Work that either
of the two later stages can do (``share``: ``ddfa align``'s landmark visibility and overlay
encoding) is split between them so that neither alone sets the pace.

    >>> for out in pipelined(paths, read_image, aligner, write):
    ...     print(out.item, out.error or len(out.result))

A stream whose steps depend on each other (a video: each frame is tracked from the last) keeps
its middle stage in the caller's thread and overlaps the two ends: :func:`prefetch` reads ahead
in a thread and :class:`Sink` writes behind in another, both in order.
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
    """``fn(*args)``, its seconds added to ``stage``'s and its exception recorded on the item."""
    start = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # recorded on the item; the pipeline goes on
        outcome.error = exc
        return None
    finally:
        outcome.seconds[stage] = outcome.seconds.get(stage, 0.0) + time.perf_counter() - start


#: ``share(item, data, result)``: work on an item's result that the processing or the writing
#: stage may do (see :func:`pipelined`)
Share = Callable[[Any, Any, Any], None]


def sequential(items: Iterable[T], decode: Callable[[T], Any], process: Callable[[T, Any], Any],
               write: Callable[[T, Any, Any], None], *, share: Share | None = None
               ) -> Generator[Outcome[T], None, None]:
    """The same contract as :func:`pipelined`, one stage after the other (the baseline;
    ``share`` is timed as part of ``process``)."""
    for index, item in enumerate(items):
        out: Outcome[T] = Outcome(index, item)
        out.data = _timed(out, "decode", decode, item)
        if out.error is None:
            out.result = _timed(out, "process", process, item, out.data)
        if out.error is None and share is not None:
            _timed(out, "process", share, item, out.data, out.result)
        if out.error is None:
            _timed(out, "write", write, item, out.data, out.result)
        yield out


def pipelined(items: Iterable[T], decode: Callable[[T], Any], process: Callable[[T, Any], Any],
              write: Callable[[T, Any, Any], None], *, share: Share | None = None,
              depth: int = 3) -> Generator[Outcome[T], None, None]:
    """Run ``decode(item)``, ``process(item, data)`` and ``write(item, data, result)`` for every
    item, the three stages in their own threads; yield the outcomes in input order.

    Args:
        items: the inputs (paths, ...).
        decode: stage 1, e.g. reading the image.
        process: stage 2, e.g. the aligner (one call at a time: the engine gets the cores).
        write: stage 3, e.g. JSON and overlays.
        share: optional ``share(item, data, result)``, work on the result that stage 2 or
            stage 3 may do (safe in either thread; its exception fails the item like theirs):
            the processing thread does it for the fraction of the items that evens out the
            two threads' seconds per item (running means of ``process``, ``write`` and
            ``share``; before they are known, while the writer has results waiting), the
            writer, before ``write``, for the others. Its seconds count in the stage that ran it.
        depth: items waiting between two stages (bounds the memory held: about ``2 * depth``
            decoded images).

    Closing the generator early (or an exception in the consumer) stops the threads.
    """
    decoded: queue.Queue = queue.Queue(maxsize=depth)
    processed: queue.Queue = queue.Queue(maxsize=depth)
    finished: queue.Queue = queue.Queue()
    stop = threading.Event()

    def decoder():
        for index, item in enumerate(items):
            if stop.is_set():
                break
            out: Outcome[T] = Outcome(index, item)
            out.data = _timed(out, "decode", decode, item)
            if not _put(decoded, out, stop):
                return
        _put(decoded, _DONE, stop)

    shared: set[int] = set()  # items whose ``share`` the processing thread did
    busy = _Balance()

    def processor():
        while (out := _get(decoded, stop)) is not _DONE:
            if out.error is None:
                out.result = busy.timed("process", out, "process", process, out.item, out.data)
            if out.error is None and share is not None and busy.processor_shares(processed.qsize()):
                busy.timed("share", out, "process", share, out.item, out.data, out.result)
                shared.add(out.index)
            if not _put(processed, out, stop):
                return
        _put(processed, _DONE, stop)

    def writer():
        while (out := _get(processed, stop)) is not _DONE:
            if out.index in shared:
                shared.discard(out.index)
            elif out.error is None and share is not None:
                busy.timed("share", out, "write", share, out.item, out.data, out.result)
            if out.error is None:
                busy.timed("write", out, "write", write, out.item, out.data, out.result)
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


class _Balance:
    """Who does :func:`pipelined`'s ``share``: the processing thread for the fraction of items
    that evens out the two threads' time per item (from running means of each part's
    seconds), the writer for the rest; until the share's time is known, the processing thread
    takes it only while the writer has results waiting."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.credit = 0.0

    def timed(self, part: str, outcome: Outcome, stage: str, fn: Callable, *args) -> Any:
        """:func:`_timed`, its seconds also counted in ``part``'s running mean."""
        before = outcome.seconds.get(stage, 0.0)
        result = _timed(outcome, stage, fn, *args)
        elapsed, old = outcome.seconds[stage] - before, self.seconds.get(part)
        self.seconds[part] = elapsed if old is None else old + 0.2 * (elapsed - old)
        return result

    def processor_shares(self, waiting: int) -> bool:
        """Whether the processing thread does the next item's share (``waiting``: results the
        writer has not taken yet)."""
        process, write, share = (self.seconds.get(k) for k in ("process", "write", "share"))
        if process is None or write is None or not share:
            return waiting > 0
        # processing p + x s and writing w + (1 - x) s are equal for this fraction x of the shares
        self.credit += min(max((write + share - process) / (2.0 * share), 0.0), 1.0)
        if self.credit >= 1.0:
            self.credit -= 1.0
            return True
        return False


def _put(q: queue.Queue, value, stop: threading.Event) -> bool:
    """Put into a bounded queue, waiting while it is full; False once ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    """Take from a queue, waiting while it is empty; ``_DONE`` once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _DONE


@dataclass
class _Raised:
    """An exception of the thread that iterates for :func:`prefetch`, to re-raise in order."""

    error: BaseException


def prefetch(items: Iterable[T], *, depth: int = 4, name: str = "ddfa-prefetch") -> Generator[T, None, None]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead of the consumer;
    yield them in order. An exception of the iteration is raised here, where it happened in
    the sequence (the items before it come first). Closing the generator (or an exception in
    the consumer) stops the thread, which then stops iterating; when the generator is done or
    closed, the thread is no longer touching ``items``.

    For an iterator whose ``next`` releases Python's GIL (video decoding) while the consumer
    computes; ``depth`` bounds the memory held (``depth`` items).
    """
    ahead: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def iterate() -> None:
        try:
            for item in items:
                if not _put(ahead, item, stop):
                    return
        except BaseException as exc:  # handed to the consumer, in order
            _put(ahead, _Raised(exc), stop)
            return
        _put(ahead, _DONE, stop)

    thread = threading.Thread(target=iterate, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class Sink(Generic[T]):
    """``write(item)`` for every item :meth:`put`, in order, in a background thread, up to
    ``depth`` items behind the caller (``threaded=False``: in the caller's thread, as a plain
    loop would, its exceptions raised by :meth:`put`; the same interface).

    The first exception ``write`` raises stops the writing; :meth:`put` then raises it in the
    caller's thread (so does :meth:`close`), and later items are dropped. :meth:`close` waits
    until every item put before it is written (or the writing failed).

        >>> with Sink(write_frame) as sink:
        ...     for frame in frames:
        ...         sink.put(frame)
    """

    def __init__(self, write: Callable[[T], None], *, depth: int = 3, name: str = "ddfa-sink",
                 threaded: bool = True):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True) if threaded else None
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        while (item := _get(self._queue, self._stop)) is not _DONE:
            if self._error is not None:
                continue  # after a failure: drop the rest
            try:
                self._write(item)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    @property
    def error(self) -> BaseException | None:
        """The exception ``write`` raised in the thread (None: none so far)."""
        return self._error

    def _unreported(self) -> BaseException | None:
        if self._error is None or self._reported:
            return None
        self._reported = True
        return self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (waits while ``depth`` items wait); raises an earlier write's exception."""
        if (error := self._unreported()) is not None:
            raise error
        if self._stop.is_set():
            raise RuntimeError("Sink.put after close")
        if self._thread is None:
            self._write(item)
        else:
            self._queue.put(item)

    def finish(self) -> BaseException | None:
        """Write what was put and stop the thread, without raising: the exception a write raised
        that was not raised yet (None: none). Idempotent."""
        if not self._stop.is_set():
            if self._thread is not None:
                self._queue.put(_DONE)
                self._thread.join()
            self._stop.set()
        return self._unreported()

    def close(self) -> None:
        """:meth:`finish`, raising the write's exception not raised yet. Idempotent."""
        if (error := self.finish()) is not None:
            raise error

    def __enter__(self) -> Sink[T]:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:  # an exception is on its way already: finish without raising another
            self.finish()


__all__ = ["Outcome", "Sink", "pipeline_threads", "pipelined", "prefetch", "sequential"]
