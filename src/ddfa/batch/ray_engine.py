"""``--engine ray``: the batch plan on Ray Data (``pip install 'ddfa[ray]'``; imported lazily).

The image keys become a ``ray.data`` dataset; ``map_batches`` with
``compute=ray.data.ActorPoolStrategy(...)`` runs the work in actor pools, each actor holding one
model:

* ``--device cpu`` (default): one CPU actor pool decodes, detects and regresses each batch
  (:func:`~ddfa.batch.worker.align_paths`; a separate regression stage would only copy every
  photo through the object store to do the cheapest step).
* ``--device cuda`` (or ``--regress-workers N`` on CPU): a CPU actor pool decodes and detects
  (:func:`~ddfa.batch.worker.detect_paths`), a second pool of regression actors (one GPU each
  with ``cuda``) regresses every face of a batch in one network call
  (:func:`~ddfa.batch.worker.regress_items`).

The driver streams the per-image results out of the dataset (``iter_batches``) and commits them
as Parquet shards itself (:mod:`ddfa.batch.run`): workers never write, so a crashed or
interrupted job cannot leave rows behind, and the output folder only has to be reachable from
the driver. Results travel as pickled :class:`~ddfa.io.batch.ImageResult` in a ``large_binary``
column (photos too, between the two pools of the split plan).

Connects to ``--address`` (e.g. ``ray://head:10001`` or ``head:6379``), else to ``$RAY_ADDRESS``,
else starts a local Ray with ``--workers`` CPUs (default: all cores), and shuts down only what it
started.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import DdfaError, InputError
from ..io.batch import ImageResult
from .local import WorkerInitError
from .worker import AlignerSpec, align_paths, detect_paths, regress_items, set_cpu_threads


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'ddfa[ray]'") from None
    return ray


def _blobs(values) -> Any:
    import pyarrow as pa

    return pa.array([pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for v in values], pa.large_binary())


def _guarded(build):
    """``build()``, or the :class:`WorkerInitError` to raise from the actor's first call (Ray would
    otherwise retry a failing constructor and report it as a dead actor)."""
    try:
        return build()
    except Exception as exc:
        return WorkerInitError(f"Ray actor on {socket.gethostname()}: {type(exc).__name__}: {exc}")


def _ready(obj):
    if isinstance(obj, WorkerInitError):
        raise obj
    return obj


class AlignActor:
    """CPU actor: decode, detect and regress batches of image keys (``--device cpu``)."""

    def __init__(self, spec: AlignerSpec):
        set_cpu_threads(spec.threads)
        self.aligner = _guarded(spec.build)

    def __call__(self, batch):
        import pyarrow as pa

        _ready(self.aligner)
        keys = batch.column("path").to_pylist()
        return pa.table({"path": pa.array(keys, pa.string()), "result": _blobs(align_paths(self.aligner, keys))})


class DetectActor:
    """CPU actor: decode and detect; passes each photo and its detections on."""

    def __init__(self, spec: AlignerSpec):
        set_cpu_threads(spec.threads)
        self.detector = _guarded(spec.build_detector)

    def __call__(self, batch):
        import pyarrow as pa

        _ready(self.detector)
        keys = batch.column("path").to_pylist()
        items = detect_paths(self.detector, keys)
        return pa.table({"path": pa.array(keys, pa.string()), "item": _blobs((v, cpu) for _, v, cpu in items)})


class RegressActor:
    """Regression actor (one GPU with ``--device cuda``): every face of a batch in one call."""

    def __init__(self, spec: AlignerSpec):
        set_cpu_threads(spec.threads)
        self.aligner = _guarded(lambda: spec.build(detector=False))

    def __call__(self, batch):
        import pyarrow as pa

        _ready(self.aligner)
        keys = batch.column("path").to_pylist()
        items = [(k, *pickle.loads(b)) for k, b in zip(keys, batch.column("item").to_pylist())]
        return pa.table({"path": pa.array(keys, pa.string()), "result": _blobs(regress_items(self.aligner, items))})


def _ddfa_cause(exc: BaseException) -> DdfaError | None:
    """The :class:`DdfaError` a Ray error wraps (Ray re-raises task errors as its own types)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, DdfaError):
            return item
        todo.extend([item.__cause__, item.__context__, getattr(item, "cause", None)])
    # Ray Data keeps only the text of an error raised in an actor call
    marker = f"{WorkerInitError.__module__}.{WorkerInitError.__qualname__}: "
    for line in str(exc).splitlines():
        if line.startswith(marker):
            return WorkerInitError(line[len(marker):])
    return None


def connect(address: str | None, workers: int | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (and should shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    return True


def run_ray(paths: Sequence[str], spec: AlignerSpec, *, batch_size: int = 16, workers: int | None = None,
            regress_workers: int | None = None, address: str | None = None) -> Iterator[list[ImageResult]]:
    """Process ``paths`` on Ray Data; yields the results of each finished block.

    Args:
        paths: image keys (see :mod:`ddfa.batch.inputs`).
        spec: the aligner the actors build.
        batch_size: images per actor call (their faces share one network batch).
        workers: CPU actors (default: the cluster's CPUs, less those of regression actors); when
            a local Ray is started, its CPU count.
        regress_workers: separate regression actors (default: 0 on CPU, one per GPU with
            ``--device cuda``).
        address: Ray cluster address (default: ``$RAY_ADDRESS``, else a new local Ray).
    """
    if not paths:
        return
    ray = _ray()
    from ray.data import ActorPoolStrategy, DataContext

    started = connect(address, workers)
    try:
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = int(resources.get("GPU", 0))
        cuda = spec.device.startswith("cuda")
        if cuda and gpus < 1:
            raise InputError(f"--device {spec.device}: the Ray cluster has no GPU")
        regressors = regress_workers if regress_workers is not None else (gpus if cuda else 0)
        if cuda and regressors < 1:
            raise InputError("--device cuda needs at least one regression actor (--regress-workers)")
        cpu_spec = spec.with_threads(1)
        threads = cpu_spec.threads or 1
        blocks = -(-len(paths) // batch_size)
        free = max(1, (cpus - regressors) // threads)  # CPU actors that fit in the cluster now
        detectors = max(1, min(workers or free, blocks))
        # all of them from the start when they fit (Ray Data's pool would otherwise grow lazily);
        # more than fit: start with what fits, grow as an autoscaling cluster adds nodes
        pool = ActorPoolStrategy(min_size=min(detectors, free), max_size=detectors)
        context = DataContext.get_current()
        context.enable_progress_bars = False  # ddfa draws its own
        context.print_on_execution_start = False
        context.enable_auto_log_stats = False
        context.verbose_stats_logs = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"

        import pyarrow as pa

        # blocks of whole batches, so that the actors share the work, as Arrow tables made and
        # described here: Ray Data's from_arrow starts task workers only to read each block's
        # schema (two more processes on a local Ray, ~2 CPU-s each; 200,000 paths: 22-40 s),
        # from_items builds rows one by one (10M paths: ~35 s and GBs of dicts); from_blocks
        # (Ray's developer API) takes the tables as they are: 4-5 s for 200,000 or 1M paths
        keys = pa.array(list(paths), pa.string())
        step = -(-len(paths) // min(blocks, 4096))
        dataset = ray.data.from_blocks([pa.table({"path": keys.slice(i, step)}) for i in range(0, len(paths), step)])
        if regressors:
            dataset = dataset.map_batches(
                DetectActor, fn_constructor_kwargs={"spec": cpu_spec}, batch_size=batch_size,
                batch_format="pyarrow", compute=pool, num_cpus=threads)
            dataset = dataset.map_batches(
                RegressActor, fn_constructor_kwargs={"spec": cpu_spec}, batch_size=batch_size,
                batch_format="pyarrow", compute=ActorPoolStrategy(size=regressors),
                num_cpus=threads, num_gpus=1 if cuda else 0)
        else:
            dataset = dataset.map_batches(
                AlignActor, fn_constructor_kwargs={"spec": cpu_spec}, batch_size=batch_size,
                batch_format="pyarrow", compute=pool, num_cpus=threads)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield [pickle.loads(blob) for blob in batch.column("result").to_pylist()]
        except Exception as exc:  # an actor that could not load the model: its one-line error
            cause = _ddfa_cause(exc)
            if cause is None:
                raise
            raise cause from None
    finally:
        if started:
            ray.shutdown()


__all__ = ["AlignActor", "DetectActor", "RegressActor", "connect", "run_ray"]
