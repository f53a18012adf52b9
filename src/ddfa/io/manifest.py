"""The record of what a batch command has done in an output folder.

Everything ddfa keeps about its runs lives in the reserved folder ``DIR/.ddfa/`` (no input can
produce that name: ``ddfa align`` refuses inputs under a ``.ddfa`` folder):

* ``DIR/.ddfa/index.jsonl``, the **manifest**: one JSON document per line, appended (never
  rewritten), each ``{"key", "input", "status", "outputs", ...}``. The latest line of a key is
  its state. ``"writing"`` is appended before an image's outputs are moved into place and
  ``"done"`` after all of them (the result JSON last) are: an image is done *only* when its
  latest line says ``"done"`` and every output it lists exists. Lines that are not valid JSON
  (a run killed in the middle of a line) are ignored.
* ``DIR/.ddfa/runs/<run id>/``: one folder per run with its ``summary.json`` and
  ``failures.json``; a run never deletes or rewrites another run's records.

Output paths in the manifest are relative to ``DIR``, with ``/`` separators.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .atomic import ensure_folder, output_error
from .results import SCHEMA_VERSION, dumps

RESERVED = ".ddfa"
MANIFEST = "index.jsonl"
RUNS = "runs"


@dataclass
class Record:
    """The latest manifest line of one key (see the module docstring)."""

    key: str
    input: str
    status: str
    outputs: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class Manifest:
    """``DIR/.ddfa/index.jsonl``: read once when opened, appended line by line.

    Args:
        out_dir: the output folder (``DIR``); ``DIR/.ddfa`` is created.

    Raises:
        OutputError: the reserved folder cannot be created or written.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.folder = ensure_folder(self.out_dir / RESERVED, "run-record folder")
        self.path = self.folder / MANIFEST
        self.latest: dict[str, Record] = {}
        #: every output path (relative to DIR) any record of a key ever listed, by key
        self.owned: dict[str, set[str]] = {}
        self._needs_newline = False
        self.run_id: str | None = None
        self._read()

    def _read(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise output_error(exc, self.path, "cannot read the manifest") from None
        for line in raw.split(b"\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # empty, or cut off by a crash
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                continue
            outputs = [o for o in entry.get("outputs") or [] if isinstance(o, str)]
            key = entry["key"]
            self.latest[key] = Record(key, str(entry.get("input", "")), str(entry.get("status", "")), outputs, entry)
            self.owned.setdefault(key, set()).update(outputs)
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")

    # ------------------------------------------------------------------ queries
    def all_outputs(self) -> set[Path]:
        """Absolute paths of every file any record lists as an output (so that folder scans can
        leave ddfa's own outputs alone)."""
        return {(self.out_dir / rel).absolute() for outputs in self.owned.values() for rel in outputs}

    def is_done(self, key: str, input_path: str, settings: dict[str, Any]) -> bool:
        """True when ``key`` was completed from the same, unchanged input with the same settings
        and every output it lists still exists."""
        record = self.latest.get(key)
        if record is None or record.status != "done" or record.input != input_path:
            return False
        if record.data.get("settings") != json.loads(dumps(settings)):
            return False
        try:
            info = os.stat(input_path)
        except OSError:
            return False
        if record.data.get("size") != info.st_size or record.data.get("mtime_ns") != info.st_mtime_ns:
            return False
        return all((self.out_dir / rel).is_file() for rel in record.outputs)

    def owner(self, rel: str) -> str | None:
        """The key whose records list the output ``rel``, or None (first found)."""
        for key, outputs in self.owned.items():
            if rel in outputs:
                return key
        return None

    # ------------------------------------------------------------------ appending
    def append(self, key: str, input_path: str, status: str, outputs: Iterable[str] = (), **data: Any) -> None:
        """Append one line; raises :class:`~ddfa.errors.OutputError` when it cannot be written
        (a failed append never leaves a line that hides the next one)."""
        outputs = list(outputs)
        entry = {"schema_version": SCHEMA_VERSION, "key": key, "input": input_path, "status": status,
                 "outputs": outputs, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **data}
        line = dumps(entry, separators=(",", ":")) + "\n"
        if self._needs_newline:
            line = "\n" + line
        payload = line.encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                written = os.write(fd, payload)
            finally:
                os.close(fd)
        except OSError as exc:
            self._needs_newline = True
            raise output_error(exc, self.path, "cannot append to the manifest") from None
        if written != len(payload):
            self._needs_newline = True
            raise OutputError(f"{self.path}: cannot append to the manifest (short write)")
        self._needs_newline = False
        self.latest[key] = Record(key, input_path, status, outputs, entry)
        self.owned.setdefault(key, set()).update(outputs)

    # ------------------------------------------------------------------ run records
    def new_run_folder(self) -> Path:
        """A fresh ``DIR/.ddfa/runs/<run id>/`` (local time to the microsecond, process id and a random
        suffix: run folders sort by start time)."""
        run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S.%f')}-{os.getpid()}-{secrets.token_hex(2)}"
        self.run_id = run_id
        folder = self.folder / RUNS / run_id
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise output_error(exc, folder, "cannot create the run-record folder") from None
        return folder


__all__ = ["MANIFEST", "RESERVED", "RUNS", "Manifest", "Record"]
