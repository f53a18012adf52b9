"""Exceptions raised by ddfa.

Every error that reaches a user names the file or input at fault and says what to do, in
one line. The command-line tool prints ``str(error)`` for any :class:`DdfaError` instead of
a traceback.
"""

from __future__ import annotations


class DdfaError(Exception):
    """Base class of every error ddfa raises on purpose."""


class AssetError(DdfaError):
    """A model asset is missing, corrupt (checksum mismatch) or unsafe to load."""


class UnsafePickleError(AssetError):
    """A pickle tried to load something other than numpy arrays and plain containers."""


class ImageReadError(DdfaError):
    """An image file is missing, empty, truncated or not an image."""


class InputError(DdfaError, ValueError):
    """An argument has the wrong type, shape or value."""
