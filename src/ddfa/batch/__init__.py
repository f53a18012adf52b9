"""Batch alignment of many photos into Parquet shards: resumable, exactly once, on a local
process pool or on Ray Data (``ddfa batch``).

    >>> from ddfa.batch import AlignerSpec, BatchOptions, run_batch
    >>> summary = run_batch("photos/", "out/run1", AlignerSpec(assets="../shared/assets"),
    ...                     BatchOptions(engine="local", batch_size=16))
    >>> import ddfa.io
    >>> faces = ddfa.io.read_batch("out/run1")            # pyarrow.Table, one row per face

Modules: :mod:`.inputs` (what is read), :mod:`.worker` (the work of one batch),
:mod:`.local` and :mod:`.ray_engine` (the engines), :mod:`.run` (the driver). The on-disk layout
and schema are in :mod:`ddfa.io.batch`.
"""

from .inputs import InputList, list_inputs, load_image
from .run import ENGINES, BatchOptions, BatchSummary, run_batch
from .worker import AlignerSpec

__all__ = ["ENGINES", "AlignerSpec", "BatchOptions", "BatchSummary", "InputList", "list_inputs", "load_image",
           "run_batch"]
