"""ddfa's per-user folders, by one rule: ddfa's own variable, else the XDG base directory, else
its usual place under the home folder. Standard library only: the start-up path imports it."""

from __future__ import annotations

import os
from pathlib import Path


def user_dir(variable: str, xdg_variable: str, home_default: str) -> Path:
    """``$variable``; else ``$xdg_variable/ddfa``; else ``~/home_default/ddfa``.

    Example: ``user_dir("DDFA_CACHE", "XDG_CACHE_HOME", ".cache")`` is ``~/.cache/ddfa`` when
    neither variable is set.
    """
    own = os.environ.get(variable)
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get(xdg_variable)
    return (Path(xdg).expanduser() if xdg else Path.home() / home_default) / "ddfa"
