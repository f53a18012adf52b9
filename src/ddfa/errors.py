"""Every exception ddfa raises on purpose, in one place.

Every error that reaches a user names the file or input at fault and says what is wrong, in
one line. The command-line tool prints ``ddfa: error: <message>`` for any :class:`DdfaError`
(control characters in names escaped, so a file name cannot forge output lines) and exits
with status 1; a traceback only with ``ddfa --debug``.

Hierarchy::

    DdfaError
    ├── AssetError                 a model file is missing, corrupt, unsafe or does not fit
    │   └── UnsafePickleError      a pickle asks for code, or exceeds the unpickler's budgets
    ├── ImageReadError             an image file is missing, empty, truncated or not an image
    ├── InputError (ValueError)    an argument has the wrong type, shape or value
    │   └── LimitError             an input exceeds a documented limit (pixels, file size,
    │                              box size)
    ├── OutputError (OSError)      an output cannot be written (not a folder, read-only,
    │   │                          disk full); ``errno`` is the cause's when there was one
    │   └── VideoWriteError        an output video cannot be created or written
    ├── VideoReadError             a video file or camera cannot be opened or decoded at all
    ├── TrainingError              training cannot go on (e.g. the loss became NaN)
    └── ConventionError            the pose benchmark's angle-convention check failed

    ImageWarning (UserWarning)     an image was read, but not all of it (first frame of
                                   several) or with the decoder's complaints
"""

from __future__ import annotations


class DdfaError(Exception):
    """Base class of every error ddfa raises on purpose."""


class AssetError(DdfaError):
    """A model asset is missing, corrupt (checksum mismatch) or unsafe to load."""


class UnsafePickleError(AssetError):
    """A pickle tried to load something other than numpy arrays and plain containers, or went
    over the unpickler's size, depth or element budget."""


class ImageReadError(DdfaError):
    """An image file is missing, empty, truncated or not an image."""


class InputError(DdfaError, ValueError):
    """An argument has the wrong type, shape or value."""


class LimitError(InputError):
    """An input exceeds one of ddfa's documented limits (see :class:`ddfa.io.image.InputLimits`)."""


class OutputError(DdfaError, OSError):
    """An output file or folder cannot be created or written.

    ``errno`` is that of the underlying :class:`OSError` (e.g. ``errno.ENOSPC`` for a full
    disk), or None.
    """

    def __init__(self, message: str, *, errno: int | None = None):
        # OSError's (errno, strerror) form would change str(); keep the one-line message
        Exception.__init__(self, message)
        self.errno = errno
        self.strerror = message

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class VideoReadError(DdfaError):
    """A video file or camera cannot be opened or decoded at all."""


class VideoWriteError(OutputError):
    """An output video cannot be created or written."""


class TrainingError(DdfaError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class ConventionError(DdfaError):
    """The documented angle convention does not fit the ground truth best."""


class ImageWarning(UserWarning):
    """Something noticed while reading an image that did not stop it from being read (only
    the first frame of a multi-frame file, libjpeg's complaints about the data)."""


def one_line(text: object) -> str:
    """``text`` on one printable line: control characters (newlines, carriage returns, escape
    sequences) written as ``\\n``, ``\\r``, ``\\x1b``, ..., so that a file name cannot forge or
    hide lines of ddfa's output."""
    out = []
    for char in str(text):
        code = ord(char)
        if char == "\\" or not (code < 32 or code == 127 or 0x80 <= code < 0xA0 or char in "\u2028\u2029"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


__all__ = [
    "AssetError",
    "ConventionError",
    "DdfaError",
    "ImageReadError",
    "ImageWarning",
    "InputError",
    "LimitError",
    "OutputError",
    "TrainingError",
    "UnsafePickleError",
    "VideoReadError",
    "VideoWriteError",
    "one_line",
]
