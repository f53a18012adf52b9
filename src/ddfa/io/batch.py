"""Batch results on disk (``ddfa batch``): a folder of Parquet shards, written atomically, and
its reader :func:`read_batch`.

Layout of an output folder ``OUT`` (a local folder or any fsspec URI)::

    OUT/images/part-<run>-<seq>.parquet     one row per input image: processed (with or without
                                            faces) or failed. A shard is *committed* when this
                                            file exists.
    OUT/faces/part-<run>-<seq>.parquet      one row per face of the same shard's images
    OUT/failures/part-<run>-<seq>.parquet   one row per failed image of the same shard
    OUT/_batch.json    the options that decide the rows (model, detector, crop policy, ...),
                       written by the first run; a later run with other options is refused
    OUT/_SUCCESS       JSON: the run's options and counts, written when every input is done
    OUT/_RUNNING       JSON: host and pid of the run writing OUT, removed when it ends

The three files of a shard share one name. Each is written under a temporary name
(``.<name>.tmp``, which Parquet readers skip as hidden) and then renamed; ``faces`` and
``failures`` first, ``images`` last. A ``faces``/``failures`` file whose ``images`` file is
missing belongs to a shard that was interrupted: :func:`read_batch` ignores it and the next run
deletes it (with any temporary file) and processes its images again. Hence every image appears in
exactly one committed shard, and no half-written file is ever read as data.

Schema (all coordinates in the image frame: 0-based pixels, origin at the centre of the top-left
pixel, x right, y down, z towards the camera, in pixels; angles in degrees, AFLW2000-3D
convention, see :mod:`ddfa.io.results`):

``faces`` (one row per face)

=============== ============================================ ==============================================
column          Arrow type                                   meaning
=============== ============================================ ==============================================
path            string                                       image path (absolute) or URI, as listed
width, height   int32                                        image size in pixels
face_index      int32                                        0, 1, ... in descending detection score
box             fixed_size_list<float32>[4]                  detection box x1, y1, x2, y2
score           float32                                      detector confidence in [0, 1]
keypoints5      fixed_size_list<fixed_size_list<float32>[2]> (5, 2) detector's 5 points x, y (eyes, nose,
                [5], nullable                                mouth corners); null when the detector has none
roi_box         fixed_size_list<float32>[4]                  square region sx, sy, ex, ey the network saw
params          fixed_size_list<float32>[62]                 de-whitened 3DMM parameters: pose 12 (3x4 P,
                                                             row-major), shape 40, expression 10
landmarks_68    fixed_size_list<fixed_size_list<float32>[3]> (68, 3) landmarks x, y, z (iBUG order)
                [68]
yaw, pitch,     float64                                      head pose in degrees
roll
uncertainty     float32, nullable                            spread of the test-time refinement passes, a
                                                             fraction of the face size; null without
                                                             ``--refine`` (see :mod:`ddfa.pipeline.refine`)
confidence      float32, nullable                            calibrated probability in [0, 1] that the
                                                             landmarks are good; null without ``--refine``
model           string                                       regressor name (e.g. ``mb05``)
detector        string                                       detector plug-in name (e.g. ``faceboxes``)
ddfa_version    string                                       ddfa version that wrote the row
=============== ============================================ ==============================================

``images`` (one row per input): ``path`` string; ``width``, ``height`` int32 (null when the
image failed); ``num_faces`` int32 (0: processed, no face found; null when failed); ``status``
string, ``"ok"`` or ``"failed"``.

``failures`` (one row per failed input): ``path`` string; ``error_class`` string (the exception
class, e.g. ``ImageReadError``); ``message`` string (one line naming the input).

Schema 1.1 added ``uncertainty`` and ``confidence``; shards of 1.0 (written before) read with
those columns null. Landmark visibility (``Face.landmarks_visible``, in ``ddfa align``'s JSON) is
not a column: it needs each face's dense mesh and z-buffer, which ``ddfa batch`` does not compute.

``column_array(table, "landmarks_68")`` turns a fixed-size-list column into one numpy array, e.g.
(N, 68, 3) float32 (NaN rows where ``keypoints5`` is null).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import DdfaError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: the tables of a batch output folder
TABLES: tuple[str, ...] = ("faces", "images", "failures")
Table = Literal["faces", "images", "failures"]
#: version of the Parquet layout (stored in each file's schema metadata)
BATCH_SCHEMA_VERSION = "1.1"
COMMIT_TABLE = "images"
SUCCESS_FILE = "_SUCCESS"
OPTIONS_FILE = "_batch.json"
LOCK_FILE = "_RUNNING"
_PART_PREFIX = "part-"
_PART_SUFFIX = ".parquet"
_TMP_SUFFIX = ".tmp"


def _require_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet
    except ImportError:  # pragma: no cover - pyarrow is installed with ddfa[batch]
        raise InputError("batch results need pyarrow: pip install 'ddfa[batch]'") from None
    return pa


# ---------------------------------------------------------------------------------------- schema
def schemas() -> dict[str, pa.Schema]:
    """The Arrow schema of each table (see the module docstring)."""
    pa = _require_pyarrow()
    f32 = pa.float32()
    meta = {b"ddfa.batch_schema_version": BATCH_SCHEMA_VERSION.encode()}
    faces = pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("face_index", pa.int32()),
        pa.field("box", pa.list_(f32, 4)),
        pa.field("score", f32),
        pa.field("keypoints5", pa.list_(pa.list_(f32, 2), 5), nullable=True),
        pa.field("roi_box", pa.list_(f32, 4)),
        pa.field("params", pa.list_(f32, 62)),
        pa.field("landmarks_68", pa.list_(pa.list_(f32, 3), 68)),
        pa.field("yaw", pa.float64()),
        pa.field("pitch", pa.float64()),
        pa.field("roll", pa.float64()),
        pa.field("uncertainty", f32, nullable=True),
        pa.field("confidence", f32, nullable=True),
        pa.field("model", pa.string()),
        pa.field("detector", pa.string()),
        pa.field("ddfa_version", pa.string()),
    ], metadata=meta)
    images = pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("num_faces", pa.int32()),
        pa.field("status", pa.string()),
    ], metadata=meta)
    failures = pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("error_class", pa.string()),
        pa.field("message", pa.string()),
    ], metadata=meta)
    return {"faces": faces, "images": images, "failures": failures}


# ---------------------------------------------------------------------------------------- records
@dataclass
class ImageResult:
    """Everything ``ddfa batch`` keeps of one input image: its faces as stacked arrays, or its error.

    Attributes:
        path: the image's path (absolute) or URI.
        width, height: image size in pixels (None when it failed).
        boxes: (K, 4) float32 detection boxes x1, y1, x2, y2, best score first.
        scores: (K,) float32 detector confidences.
        keypoints5: K entries, each a (5, 2) float32 array of the detector's 5 points or None.
        roi_boxes: (K, 4) float32 square crop regions sx, sy, ex, ey.
        params: (K, 62) float32 de-whitened 3DMM parameters.
        landmarks: (K, 68, 3) float32 landmarks in the image frame.
        pose: (K, 3) float64 yaw, pitch, roll in degrees.
        uncertainty, confidence: (K,) float32 of refined faces, NaN without refinement.
        error_class, message: the exception class and one-line message of a failed image.
        cpu_seconds: CPU time its worker spent on it (its share of the batch), and ``worker``:
            ``host:pid`` of that worker; not written to the tables, used for the run's accounting.
    """

    path: str
    width: int | None = None
    height: int | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    keypoints5: list = field(default_factory=list)
    roi_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    params: np.ndarray = field(default_factory=lambda: np.zeros((0, 62), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 68, 3), np.float32))
    pose: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float64))
    uncertainty: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    error_class: str | None = None
    message: str | None = None
    cpu_seconds: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.error_class is None

    @property
    def num_faces(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_faces(cls, path: str, shape: Sequence[int], faces: Sequence) -> ImageResult:
        """From the :class:`~ddfa.Face` records of one image of shape ``(H, W[, C])``."""
        def stack(values, shape_, dtype):
            return np.stack(values).astype(dtype) if values else np.zeros(shape_, dtype)

        keypoints = []
        for face in faces:
            kp = getattr(face, "keypoints5", None)
            keypoints.append(None if kp is None else np.asarray(kp, np.float32).reshape(5, 2))
        return cls(
            path=path, width=int(shape[1]), height=int(shape[0]),
            boxes=stack([f.box for f in faces], (0, 4), np.float32),
            scores=np.array([f.score for f in faces], np.float32),
            keypoints5=keypoints,
            roi_boxes=stack([f.roi_box for f in faces], (0, 4), np.float32),
            params=stack([f.params for f in faces], (0, 62), np.float32),
            landmarks=stack([f.landmarks for f in faces], (0, 68, 3), np.float32),
            pose=np.array([[f.pose.yaw, f.pose.pitch, f.pose.roll] for f in faces], np.float64).reshape(-1, 3),
            uncertainty=_optional([getattr(f, "uncertainty", None) for f in faces]),
            confidence=_optional([getattr(f, "confidence", None) for f in faces]),
        )

    @classmethod
    def failure(cls, path: str, exc: BaseException) -> ImageResult:
        """A failed image: the error's class and a one-line message naming the input (as ``ddfa align``
        reports it)."""
        text = str(exc).strip()
        if isinstance(exc, DdfaError):
            message = text if path in text else f"{path}: {text}"
        else:
            message = f"{path}: {type(exc).__name__}: {text.splitlines()[-1] if text else ''}".rstrip(": ")
        return cls(path=path, error_class=type(exc).__name__, message=message.splitlines()[0] if message else path)


def _optional(values: Sequence[float | None]) -> np.ndarray:
    """(K,) float32 with NaN for None."""
    return np.array([np.nan if v is None else v for v in values], np.float32).reshape(-1)


def _nullable(values: np.ndarray):
    """A float32 Arrow array, null where ``values`` is NaN."""
    pa = _require_pyarrow()
    values = np.asarray(values, np.float32)
    return pa.array(values, pa.float32(), mask=np.isnan(values))


def _fixed_list(values: np.ndarray, *sizes: int, mask: np.ndarray | None = None):
    """A (nested) fixed-size-list array from a (N, *sizes) array (rows where ``mask`` is True are null)."""
    pa = _require_pyarrow()
    arr = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    for i, size in enumerate(reversed(sizes)):
        outer = i == len(sizes) - 1
        arr = pa.FixedSizeListArray.from_arrays(arr, size, mask=pa.array(mask) if outer and mask is not None else None)
    return arr


def results_to_tables(results: Sequence[ImageResult], *, model: str, detector: str,
                      version: str) -> dict[str, pa.Table]:
    """The ``faces``, ``images`` and ``failures`` tables of some images (schema of :func:`schemas`)."""
    pa = _require_pyarrow()
    schema = schemas()
    ok = [r for r in results if r.ok]
    with_faces = [r for r in ok if r.num_faces]
    counts = np.array([r.num_faces for r in with_faces], np.int64)
    n = int(counts.sum())

    def cat(name, shape, dtype):
        return np.concatenate([getattr(r, name) for r in with_faces]) if n else np.zeros((0, *shape), dtype)

    keypoints = [kp for r in with_faces for kp in r.keypoints5]
    kp_mask = np.array([kp is None for kp in keypoints], bool)
    kp_values = np.stack([np.zeros((5, 2), np.float32) if kp is None else kp for kp in keypoints]) if n else \
        np.zeros((0, 5, 2), np.float32)
    pose = cat("pose", (3,), np.float64)
    faces = pa.Table.from_arrays([
        pa.array(np.repeat([r.path for r in with_faces], counts).tolist() if n else [], pa.string()),
        pa.array(np.repeat([r.width for r in with_faces], counts).astype(np.int32)),
        pa.array(np.repeat([r.height for r in with_faces], counts).astype(np.int32)),
        pa.array(np.concatenate([np.arange(c, dtype=np.int32) for c in counts]) if n else np.zeros(0, np.int32)),
        _fixed_list(cat("boxes", (4,), np.float32), 4),
        pa.array(cat("scores", (), np.float32)),
        _fixed_list(kp_values, 5, 2, mask=kp_mask),
        _fixed_list(cat("roi_boxes", (4,), np.float32), 4),
        _fixed_list(cat("params", (62,), np.float32), 62),
        _fixed_list(cat("landmarks", (68, 3), np.float32), 68, 3),
        pa.array(pose[:, 0]), pa.array(pose[:, 1]), pa.array(pose[:, 2]),
        _nullable(cat("uncertainty", (), np.float32)),
        _nullable(cat("confidence", (), np.float32)),
        pa.array([model] * n, pa.string()),
        pa.array([detector] * n, pa.string()),
        pa.array([version] * n, pa.string()),
    ], schema=schema["faces"])
    images = pa.Table.from_arrays([
        pa.array([r.path for r in results], pa.string()),
        pa.array([r.width for r in results], pa.int32()),
        pa.array([r.height for r in results], pa.int32()),
        pa.array([r.num_faces if r.ok else None for r in results], pa.int32()),
        pa.array(["ok" if r.ok else "failed" for r in results], pa.string()),
    ], schema=schema["images"])
    failed = [r for r in results if not r.ok]
    failures = pa.Table.from_arrays([
        pa.array([r.path for r in failed], pa.string()),
        pa.array([r.error_class for r in failed], pa.string()),
        pa.array([r.message for r in failed], pa.string()),
    ], schema=schema["failures"])
    return {"faces": faces, "images": images, "failures": failures}


def column_array(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size-list column (or a numeric column) as one numpy array.

    ``box``/``roi_box`` -> (N, 4) float32, ``params`` -> (N, 62), ``landmarks_68`` -> (N, 68, 3),
    ``keypoints5`` -> (N, 5, 2) with NaN rows where the value is null; numeric columns -> (N,).
    """
    pa = _require_pyarrow()
    column = table.column(name)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape: list[int] = []
    kind = arr.type
    while pa.types.is_fixed_size_list(kind):
        shape.append(kind.list_size)
        kind = kind.value_type
    if not shape:
        return arr.to_numpy(zero_copy_only=False)
    out = np.full((len(arr), *shape), np.nan, dtype=kind.to_pandas_dtype())
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), bool)
    flat = arr.filter(pa.array(valid)) if not valid.all() else arr
    for _ in shape:
        flat = flat.flatten()
    out[valid] = flat.to_numpy(zero_copy_only=False).reshape(-1, *shape)
    return out


# ---------------------------------------------------------------------------------------- on disk
class BatchOutput:
    """One output folder: committed shards, atomic writes, the options record, the run lock.

    Args:
        root: a local folder or an fsspec URI (``s3://bucket/run``; the filesystem's package must
            be installed). Created when missing.
    """

    def __init__(self, root: str | os.PathLike):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root)
        try:
            self.fs, base = fsspec.core.url_to_fs(self.root)
        except (ImportError, ValueError) as exc:
            raise InputError(f"{self.root}: cannot open this output location ({exc})") from None
        self.base = base.rstrip("/") or base
        self.local = isinstance(self.fs, LocalFileSystem)

    # ------------------------------------------------------------------ paths
    def _path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def _names(self, table: str) -> list[str]:
        """File names of the committed-or-not parts of one table (temporary files excluded)."""
        folder = self._path(table)
        if not self.fs.exists(folder):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        return sorted(n for n in names if n.startswith(_PART_PREFIX) and n.endswith(_PART_SUFFIX))

    def committed(self) -> list[str]:
        """Names of the committed shards (those with an ``images`` file), sorted."""
        return self._names(COMMIT_TABLE)

    def exists(self) -> bool:
        return self.fs.exists(self.base)

    # ------------------------------------------------------------------ writing
    def _write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically: a hidden temporary file, then a rename."""
        folder, name = path.rsplit("/", 1)
        tmp = f"{folder}/.{name}.{os.getpid()}{_TMP_SUFFIX}"
        if self.local:
            os.makedirs(folder, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        else:
            self.fs.makedirs(folder, exist_ok=True)
            with self.fs.open(tmp, "wb") as handle:
                handle.write(data)
            self.fs.mv(tmp, path)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        from .results import SCHEMA_VERSION

        data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
        self._write_bytes(self._path(name), (json.dumps(data, indent=1) + "\n").encode())

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read().decode())

    def remove(self, name: str) -> None:
        path = self._path(name)
        if self.fs.exists(path):
            self.fs.rm(path)

    def write_shard(self, name: str, tables: dict[str, pa.Table]) -> None:
        """Commit one shard: ``faces`` and ``failures`` (when not empty), then ``images``."""
        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        for table in ("faces", "failures", COMMIT_TABLE):
            data = tables[table]
            if table != COMMIT_TABLE and data.num_rows == 0:
                continue
            sink = pa.BufferOutputStream()
            pq.write_table(data, sink, compression="zstd")
            self._write_bytes(self._path(table, name), sink.getvalue().to_pybytes())

    # ------------------------------------------------------------------ recovery
    def cleanup(self) -> dict[str, int]:
        """Delete temporary files and the parts of uncommitted shards (left by an interrupted run).

        Returns:
            ``{"temporary": n, "uncommitted": m}`` files deleted.
        """
        committed = set(self.committed())
        removed = {"temporary": 0, "uncommitted": 0}
        for table in TABLES:
            folder = self._path(table)
            if not self.fs.exists(folder):
                continue
            for path in self.fs.ls(folder, detail=False):
                name = path.rstrip("/").rsplit("/", 1)[-1]
                if name.startswith(".") and name.endswith(_TMP_SUFFIX):
                    self.fs.rm(path)
                    removed["temporary"] += 1
                elif table != COMMIT_TABLE and name.endswith(_PART_SUFFIX) and name not in committed:
                    self.fs.rm(path)
                    removed["uncommitted"] += 1
        return removed

    def read(self, table: str, columns: Sequence[str] | None = None) -> pa.Table:
        """The committed rows of one table (see :func:`read_batch`)."""
        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        if table not in TABLES:
            raise InputError(f"unknown batch table {table!r}; expected one of {', '.join(TABLES)}")
        schema = schemas()[table]
        committed = set(self.committed())
        names = [n for n in self._names(table) if n in committed]
        wanted = pa.schema([schema.field(c) for c in columns]) if columns else schema
        parts = []
        for name in names:
            with self.fs.open(self._path(table, name), "rb") as handle:
                present = set(pq.read_schema(handle).names)
                handle.seek(0)
                part = pq.read_table(handle, columns=[c for c in wanted.names if c in present])
            for f in wanted:  # columns added by a later schema version: null in older shards
                if f.name not in present:
                    part = part.append_column(f, pa.nulls(len(part), f.type))
            parts.append(part.select(wanted.names))
        if not parts:
            return wanted.empty_table()
        return pa.concat_tables(parts)

    # ------------------------------------------------------------------ one writer at a time
    def acquire(self) -> None:
        """Mark OUT as being written by this process (``_RUNNING``).

        Raises:
            InputError: another live process on this host is writing to the same folder.
        """
        host = socket.gethostname()
        current = self.read_json(LOCK_FILE)
        if current and current.get("host") == host and current.get("pid") != os.getpid() \
                and _pid_alive(int(current.get("pid", 0))):
            raise InputError(f"{self.root}: another ddfa batch (pid {current['pid']}) is writing to this folder; "
                             f"wait for it, or delete {LOCK_FILE} there if that process is not ddfa")
        self.write_json(LOCK_FILE, {"host": host, "pid": os.getpid(), "started": time.time()})

    def release(self) -> None:
        current = self.read_json(LOCK_FILE)
        if current and current.get("pid") == os.getpid() and current.get("host") == socket.gethostname():
            self.remove(LOCK_FILE)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_batch(out: str | os.PathLike, table: Table = "faces", *, columns: Iterable[str] | None = None,
               as_pandas: bool = False):
    """Read one table of a ``ddfa batch`` output folder.

    Only committed shards are read (see the module docstring): the rows of an interrupted shard
    and temporary files are never returned.

    Args:
        out: the output folder or URI given to ``ddfa batch --output``.
        table: ``"faces"`` (one row per face), ``"images"`` (one row per input: ``status`` ok or
            failed, ``num_faces`` 0 when no face was found) or ``"failures"`` (path, error class,
            message).
        columns: read only these columns.
        as_pandas: return a ``pandas.DataFrame`` instead of a ``pyarrow.Table``.

    Returns:
        A ``pyarrow.Table`` (or DataFrame) with the schema documented in :mod:`ddfa.io.batch`;
        fixed-size-list columns become numpy arrays with :func:`column_array`.

    Raises:
        InputError: ``out`` is not a batch output folder, or ``table`` is unknown.
    """
    output = BatchOutput(out)
    if not output.exists() or not (output.fs.exists(output._path(COMMIT_TABLE))
                                   or output.read_json(OPTIONS_FILE) is not None):
        raise InputError(f"{out}: not a ddfa batch output folder (no {COMMIT_TABLE}/ or {OPTIONS_FILE})")
    result = output.read(table, list(columns) if columns is not None else None)
    if not as_pandas:
        return result
    import pandas as pd

    ints = {pa_type: dtype for pa_type, dtype in ((_require_pyarrow().int32(), pd.Int32Dtype()),)}
    return result.to_pandas(types_mapper=ints.get)  # nullable int32: width/height/num_faces stay integers


__all__ = ["BATCH_SCHEMA_VERSION", "TABLES", "BatchOutput", "ImageResult", "column_array", "read_batch",
           "results_to_tables", "schemas"]
