"""Writing files so that a file present is always complete.

Every file ddfa writes is first written under a temporary name in the destination folder and
then renamed into place (:func:`os.replace`, atomic on POSIX and Windows): an interruption
(Ctrl-C, a full disk, a crash) leaves either the old file or the new one, never half of one;
the temporary file is removed on any error. Files get the permissions the umask gives (0644
under the usual umask 022), like any file the user creates.

:class:`Staging` does the same for a *group* of files (all outputs of one photo): they are
written into a hidden folder beside their destination, then moved into place in a chosen
order (the result JSON last), and the folder is removed whatever happens.

Temporary names start with ``.ddfa-tmp-`` (files) and ``.ddfa-staging-`` (folders); folder
scans of ``ddfa align`` never take them as inputs.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import OutputError

TMP_PREFIX = ".ddfa-tmp-"
STAGING_PREFIX = ".ddfa-staging-"


def output_error(exc: OSError, path: str | os.PathLike, action: str = "cannot write") -> OutputError:
    """An :class:`~ddfa.errors.OutputError` naming ``path`` and the cause of ``exc``."""
    if isinstance(exc, OutputError):
        return exc
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        cause = "no space left on the device (disk full)"
    elif exc.errno == errno.EROFS:
        cause = "read-only file system"
    return OutputError(f"{path}: {action} ({cause})", errno=exc.errno)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{path.name}"[:255])


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file renamed into place on success.

    ``mode`` is ``"wb"`` or ``"w"`` (``kwargs`` go to :func:`open`). On any exception the
    temporary file is removed and ``path`` is left as it was; an :class:`OSError` becomes an
    :class:`~ddfa.errors.OutputError` naming ``path``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got {mode!r}")
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise output_error(exc, path) from None
    try:
        with open(fd, mode, **kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise output_error(exc, path) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return path


def ensure_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be created in it.

    Raises:
        OutputError: ``path`` or a parent is a file, or the folder cannot be created or is
            not writable (read-only, permission denied, disk full).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: the {what} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path}: the {what} cannot be created: a part of the path is a file") from None
    except NotADirectoryError:
        raise OutputError(f"{path}: the {what} cannot be created: a part of the path is a file") from None
    except OSError as exc:
        raise output_error(exc, path, f"the {what} cannot be created") from None
    probe = path / f"{TMP_PREFIX}probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(exc, path, f"cannot write into the {what}") from None
    return path


class Staging:
    """A hidden folder in ``folder`` where a group of files is written before moving into place.

    Usage::

        with Staging(out_dir) as stage:
            write_something(stage.path("a.png"))
            stage.commit(["a.png", "a.json"])   # moved into out_dir in this order
        # the staging folder is gone, whether commit ran or an exception was raised

    Files are moved with :func:`os.replace` (same file system, atomic each).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.dir = self.folder / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.dir.mkdir()
        except OSError as exc:
            raise output_error(exc, self.folder, "cannot write into") from None

    def path(self, name: str) -> Path:
        """Where to write the file that will become ``folder / name``."""
        return self.dir / name

    def staged(self) -> list[str]:
        """Names (relative paths) of the files written so far."""
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())

    def commit(self, order: Sequence[str]) -> list[Path]:
        """Move the staged files ``order`` (names relative to the staging folder) into place, in
        that order; returns the final paths."""
        final = []
        for name in order:
            target = self.folder / name
            try:
                os.replace(self.dir / name, target)
            except OSError as exc:
                raise output_error(exc, target) from None
            final.append(target)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


__all__ = ["STAGING_PREFIX", "TMP_PREFIX", "Staging", "atomic_open", "atomic_write_bytes", "ensure_folder",
           "output_error"]
