"""The named outputs of ``ddfa align --outputs`` (and ``ddfa video``), as a registry.

Two kinds:

* **image outputs** ``fn(image, faces) -> (H', W', 3) uint8 BGR``: overlays and renderings of
  all faces of one photo (e.g. ``2d_sparse``); saved as ``<stem>_<name>.png``. Each declares
  whether it is *frame-sized* (an image of the photo's size and pixel frame, drawn over it or
  aligned with it: usable as a video overlay) or not (e.g. ``uv_tex``, a texture atlas).
* **file outputs** ``fn(image, faces, out_dir, stem) -> list[Path]``: anything else (meshes,
  raw arrays), written by the function itself.

Register new outputs with :func:`register_image_output` / :func:`register_file_output`.
Importing this module is light: the implementations (numba kernels included) are imported by
each output on its first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write_bytes
from ..io.image import encode_image
from .draw import draw_landmarks

OutputKind = Literal["image", "file"]
ImageFunction = Callable[[np.ndarray, Sequence[Any]], np.ndarray]
FileFunction = Callable[[np.ndarray, Sequence[Any], Path, str], list[Path]]


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """One registered output.

    Attributes:
        name: the name given to ``--outputs``.
        kind: ``"image"`` or ``"file"`` (see the module docstring).
        function: the implementation.
        description: one line for ``--help``.
        frame_sized: image outputs only: the result has the photo's size and pixel frame (True
            for overlays and per-pixel renderings; False for e.g. texture atlases).
    """

    name: str
    kind: OutputKind
    function: Callable[..., Any]
    description: str
    frame_sized: bool = False


OUTPUTS: dict[str, OutputSpec] = {}


def register_image_output(name: str, description: str, *, frame_sized: bool = True
                          ) -> Callable[[ImageFunction], ImageFunction]:
    """Decorator: ``fn(image, faces) -> image`` becomes the image output ``name``.

    ``frame_sized``: ``fn`` returns an image of the photo's size, in its pixel frame (usable as a
    video overlay); False for anything else (e.g. a texture atlas).
    """

    def wrap(fn: ImageFunction) -> ImageFunction:
        OUTPUTS[name] = OutputSpec(name=name, kind="image", function=fn, description=description,
                                   frame_sized=bool(frame_sized))
        return fn

    return wrap


def register_file_output(name: str, description: str) -> Callable[[FileFunction], FileFunction]:
    """Decorator: ``fn(image, faces, out_dir, stem) -> list[Path]`` becomes the file output ``name``."""

    def wrap(fn: FileFunction) -> FileFunction:
        OUTPUTS[name] = OutputSpec(name=name, kind="file", function=fn, description=description)
        return fn

    return wrap


def image_output_names(*, frame_sized: bool | None = None) -> list[str]:
    """Names of the image outputs, in registration order (only the frame-sized ones, or only the
    others, when ``frame_sized`` is True or False)."""
    return [name for name, spec in OUTPUTS.items()
            if spec.kind == "image" and (frame_sized is None or spec.frame_sized == frame_sized)]


def check_output_names(names: Sequence[str], *, images_only: bool = False) -> list[str]:
    """Validate output names (raises :class:`InputError` naming the unknown ones); returns
    them without repeats, in order."""
    allowed = image_output_names() if images_only else list(OUTPUTS)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InputError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def render_output(name: str, image: np.ndarray, faces: Sequence[Any]) -> np.ndarray:
    """Render the image output ``name`` of ``faces`` on ``image`` (BGR uint8)."""
    spec = OUTPUTS.get(name)
    if spec is None or spec.kind != "image":
        raise InputError(f"{name!r} is not an image output; choose from {', '.join(image_output_names())}")
    return spec.function(image, faces)


def encode_image_outputs(names: Sequence[str], image: np.ndarray, faces: Sequence[Any]) -> dict[str, bytes]:
    """The image outputs among ``names`` of one photo, drawn and PNG-encoded: ``{name: bytes}``.

    Nothing is written: CPU work that any thread may do before the files are staged (``ddfa
    align``'s throughput mode splits it between the networks' thread and the writer).
    """
    return {name: encode_image(OUTPUTS[name].function(image, faces), ".png", name=name)
            for name in check_output_names(names) if OUTPUTS[name].kind == "image"}


def stage_outputs(names: Sequence[str], image: np.ndarray, faces: Sequence[Any], folder: str | Path,
                  stem: str, *, encoded: dict[str, bytes] | None = None) -> list[str]:
    """Write every requested output of one photo into ``folder`` (a staging folder, see
    :class:`ddfa.io.atomic.Staging`); returns the names of the files written, relative to it.
    ``encoded``: the image outputs already drawn and encoded (:func:`encode_image_outputs` of
    the same ``names``; None: drawn and encoded here)."""
    folder = Path(folder)
    if encoded is None:
        encoded = encode_image_outputs(names, image, faces)
    written: list[str] = []
    for name in check_output_names(names):
        spec = OUTPUTS[name]
        if spec.kind == "image":
            path = folder / f"{stem}_{name}.png"
            atomic_write_bytes(path, encoded[name])
            written.append(path.name)
        else:
            written.extend(str(Path(p).resolve().relative_to(folder.resolve()))
                           for p in spec.function(image, faces, folder, stem))
    return written


def write_outputs(names: Sequence[str], image: np.ndarray, faces: Sequence[Any], out_dir: str | Path,
                  stem: str, *, encoded: dict[str, bytes] | None = None) -> list[Path]:
    """Write every requested output of one photo into ``out_dir``; returns the files written
    (``encoded``: as :func:`stage_outputs`).

    All or nothing: the files are written into a hidden staging folder in ``out_dir`` and
    moved into place only when every one of them is complete (an interruption or a full disk
    leaves no partial file).

    Raises:
        OutputError: ``out_dir`` cannot be created or written.
    """
    from ..io.atomic import Staging, ensure_folder

    out_dir = ensure_folder(out_dir)
    with Staging(out_dir) as stage:
        return stage.commit(stage_outputs(names, image, faces, stage.dir, stem, encoded=encoded))


@register_image_output("2d_sparse", "68 landmarks and boxes drawn on the photo")
def _sparse(image, faces):
    return draw_landmarks(image, faces)


# ---------------------------------------------------------------------- dense outputs
# (implementations are imported on first use, so that importing the registry stays light)


@register_image_output("2d_dense", "dense mesh vertices drawn as dots on the photo")
def _dense(image, faces):
    from .draw import draw_dense

    return draw_dense(image, faces)


@register_image_output("3d", "dense mesh, shaded grey, blended over the photo")
def _shaded(image, faces):
    from .dense import render_shaded

    return render_shaded(image, faces)


@register_image_output("depth", "depth image: each face's normalised depth (white = nearest), black background")
def _depth(image, faces):
    from .dense import render_depth

    grey = np.rint(render_depth(image, faces, normalize=True) * 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


@register_file_output("depth_raw", "raw depth map <stem>_depth.npy: (H, W) float32 image-frame z in pixels "
                      "(larger = nearer), NaN off the faces")
def _depth_raw(image, faces, out_dir, stem):
    from .dense import render_depth

    path = Path(out_dir) / f"{stem}_depth.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, render_depth(image, faces, normalize=False))
    return [path]


@register_image_output("pncc", "PNCC: the mean-face NCC code (x red, y green, z blue) of the surface at each pixel, "
                       "black background")
def _pncc(image, faces):
    from .dense import render_pncc

    return np.rint(render_pncc(image, faces)[:, :, ::-1] * 255).astype(np.uint8)


@register_image_output("pose", "a 3D box per face turning with the head, and yaw/pitch/roll in degrees")
def _pose(image, faces):
    from .draw import draw_pose

    return draw_pose(image, faces)


UV_TEXTURE_SIZE = 256


@register_image_output("uv_tex", f"UV texture of each face ({UV_TEXTURE_SIZE}x{UV_TEXTURE_SIZE}, side by side; "
                       "hidden parts black); not photo-sized", frame_sized=False)
def _uv_tex(image, faces):
    from .texture import uv_texture

    tiles = [uv_texture(image, face, UV_TEXTURE_SIZE) for face in faces]
    if not tiles:
        return np.zeros((UV_TEXTURE_SIZE, UV_TEXTURE_SIZE, 3), np.uint8)
    return np.concatenate(tiles, axis=1)


@register_image_output("paf", "pose-adaptive features (3DDFA): the projected 64x64 anchor grid on each face, "
                       "and its sampled 64x64 map inset beside the face")
def _paf(image, faces):
    from .paf import draw_paf

    return draw_paf(image, faces)


@register_file_output("ply", "each face's mesh with photo colours: <stem>_face<i>.ply (x, -y, z image pixels)")
def _ply(image, faces, out_dir, stem):
    from .export import save_ply

    return [save_ply(face, Path(out_dir) / f"{stem}_face{i}.ply", image) for i, face in enumerate(faces)]


@register_file_output("obj", "each face's mesh with photo colours and UV texture: <stem>_face<i>.obj/.mtl/"
                      "_texture.png")
def _obj(image, faces, out_dir, stem):
    from .export import save_obj

    written = []
    for i, face in enumerate(faces):
        written += save_obj(face, Path(out_dir) / f"{stem}_face{i}.obj", image)
    return written
