"""Reading regressor checkpoints of 3DDFA v1, 3DDFA_V2 and ddfa itself.

Layouts understood (all loaded with ``torch.load(weights_only=True)``):

* **3DDFA_V2** (``mb05_120x120.pth``, ``mb1_120x120.pth``): ``{"state_dict": {...}}`` with
  ``module.`` prefixes, the parameter head named ``fc_param`` and an unused 2D-landmark head
  ``fc_lm``.
* **3DDFA v1** (``phase1_*.pth.tar``): ``{"state_dict": {...}, ...}`` with ``module.`` prefixes
  and the head named ``fc``.
* **ddfa** (written by ``ddfa train``): ``{"state_dict": {...}, "ddfa": {"arch": str,
  "config": {build keywords, e.g. "width": float}, "width": float, "num_outputs": 62,
  "whitening": {"name": str, "mean": (62,), "std": (62,)},
  ...}}``, plain layer names.
* a bare state dict of any of the above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AssetError
from ..morphable.params import NUM_PARAMS


@dataclass
class RegressorCheckpoint:
    """A normalised checkpoint: plain layer names, head named ``fc``.

    Attributes:
        state_dict: tensors keyed as in :class:`ddfa.nets.mobilenet_v1.MobileNetV1`.
        layout: ``"v2"``, ``"v1"`` or ``"ddfa"``.
        meta: the ``ddfa`` metadata dict for ddfa checkpoints, else empty.
    """

    state_dict: dict[str, torch.Tensor]
    layout: str
    meta: dict


def _meta_and_state(obj: dict, source: str) -> tuple[dict, dict]:
    if not isinstance(obj, dict):
        raise AssetError(f"{source}: not a checkpoint (a {type(obj).__name__}, expected a dict)")
    meta = obj.get("ddfa", {}) if isinstance(obj.get("ddfa"), dict) else {}
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not state:
        raise AssetError(f"{source}: no state dict found in the checkpoint")
    return meta, state


def read_ddfa_checkpoint(obj: dict, source: str = "<checkpoint>") -> RegressorCheckpoint:
    """The default checkpoint adapter of an architecture: ddfa's own layout (or a bare state
    dict), with plain layer names; ``module.`` prefixes (DDP) are removed."""
    meta, state = _meta_and_state(obj, source)
    out = {(k[len("module."):] if k.startswith("module.") else k): v
           for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not out:
        raise AssetError(f"{source}: the checkpoint holds no tensors")
    return RegressorCheckpoint(out, "ddfa", dict(meta))


def normalise_checkpoint(obj: dict, source: str = "<checkpoint>") -> RegressorCheckpoint:
    """MobileNet-V1's checkpoint adapter: any of the layouts above -> :class:`RegressorCheckpoint`."""
    meta, state = _meta_and_state(obj, source)
    out: dict[str, torch.Tensor] = {}
    has_param_head = False
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.startswith("fc_lm."):
            continue  # 3DDFA_V2's auxiliary 2D landmark head: unused at inference
        if key.startswith("fc_param."):
            key = "fc." + key[len("fc_param.") :]
            has_param_head = True
        out[key] = value
    if "conv1.weight" not in out or "fc.weight" not in out:
        raise AssetError(f"{source}: not a MobileNet-V1 regressor checkpoint (no conv1/fc weights)")
    layout = "ddfa" if meta else ("v2" if has_param_head else "v1")
    return RegressorCheckpoint(out, layout, dict(meta))


def whitening_from_meta(meta: dict, source: str = "<checkpoint>"):
    """The :class:`~ddfa.morphable.params.Whitening` stored in a ddfa checkpoint, or None.

    Raises:
        AssetError: the stored whitening is not two (62,) vectors of finite numbers with a
            positive standard deviation (it would turn every prediction into garbage or NaN).
    """
    from ..morphable.params import Whitening

    white = meta.get("whitening")
    if not isinstance(white, dict) or "mean" not in white:
        return None
    try:
        mean = np.asarray(torch.as_tensor(white["mean"]).cpu(), dtype=np.float32)
        std = np.asarray(torch.as_tensor(white.get("std")).cpu(), dtype=np.float32)
    except (TypeError, ValueError, RuntimeError):
        raise AssetError(f"{source}: the stored whitening is not numeric (expected mean and std of {NUM_PARAMS} "
                         "numbers each)") from None
    check_whitening(mean, std, source)
    return Whitening(mean=mean, std=std, name=str(white.get("name", "custom")))


def check_whitening(mean: np.ndarray, std: np.ndarray, source: str = "<checkpoint>") -> None:
    """Raise :class:`AssetError` unless ``mean`` and ``std`` are (62,) finite with ``std > 0``."""
    if np.shape(mean) != (NUM_PARAMS,) or np.shape(std) != (NUM_PARAMS,):
        raise AssetError(f"{source}: the whitening has shapes {np.shape(mean)} and {np.shape(std)}; expected "
                         f"({NUM_PARAMS},) each")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise AssetError(f"{source}: the whitening holds NaN or infinite values")
    if not np.all(std > 0):
        raise AssetError(f"{source}: the whitening has standard deviations <= 0")


def make_ddfa_checkpoint(model: torch.nn.Module, *, arch: str, whitening, config: dict | None = None,
                         width: float | None = None, **extra) -> dict:
    """A checkpoint dict in ddfa's own layout (see the module docstring).

    ``model`` is the bare network (not DDP-wrapped); ``config`` the architecture's build
    keywords (``width=`` is a shorthand for MobileNet's ``{"width": w}``); ``whitening`` a
    :class:`~ddfa.morphable.params.Whitening`. ``extra`` goes into the metadata (epoch, ...).
    """
    config = dict(config or {})
    if width is not None:
        config["width"] = float(width)
    meta = {
        "arch": arch,
        "config": config,
        **({"width": config["width"]} if "width" in config else {}),
        "num_outputs": NUM_PARAMS,
        "whitening": {
            "name": whitening.name,
            "mean": torch.as_tensor(whitening.mean),
            "std": torch.as_tensor(whitening.std),
        },
    }
    meta.update(extra)
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "ddfa": meta}


def to_v2_state_dict(state_dict: dict[str, torch.Tensor]) -> dict:
    """Export a plain state dict to 3DDFA_V2's layout (``module.`` prefix, ``fc_param`` head)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("fc."):
            key = "fc_param." + key[len("fc.") :]
        out["module." + key] = value
    return {"state_dict": out}
