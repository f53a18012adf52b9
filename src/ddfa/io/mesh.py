"""PLY and OBJ mesh files: writers for exporting faces, and readers for checking them.

**Frame of exported faces** (:func:`image_to_export_frame`): right-handed, in image pixels,
``X = x`` (image column, right), ``Y = -y`` (up: the negated image row), ``Z = z`` (towards
the viewer, ddfa's image-frame depth). A mesh opened in MeshLab/Blender/trimesh therefore
looks like the photo, upright, seen from the front. The morphable model's triangles run
clockwise seen from the front in this (and the model's own y-up) frame, so the exporters
write each triangle ``(a, b, c)`` as ``(a, c, b)`` (:func:`export_triangles`): then
right-hand-rule normals point out of the face, towards the viewer.

Formats written:

* PLY (``binary_little_endian`` by default, or ``ascii``): ``vertex`` with float ``x y z``
  and optional uchar ``red green blue``; ``face`` with a uchar-counted int list
  ``vertex_indices``.
* OBJ: ``v x y z [r g b]`` (colours as floats in [0, 1], the common extension), optional
  ``vt u v`` (one per vertex, v up), ``f a/a b/b c/c`` (1-based); with a texture, a ``.mtl``
  beside it (``map_Kd`` names the texture PNG).

The readers understand what the writers write (and plain PLY/OBJ triangle meshes in those
layouts); they are not general-purpose parsers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass
class Mesh:
    """A triangle mesh as read from a file.

    Attributes:
        vertices: (N, 3) float32.
        triangles: (T, 3) int64, 0-based.
        colors: (N, 3) uint8 RGB per vertex, or None.
        uv: (N, 2) float32 texture coordinates (v up), or None.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None


def image_to_export_frame(vertices) -> np.ndarray:
    """(N, 3) image-frame vertices -> the right-handed export frame ``(x, -y, z)``."""
    out = np.array(vertices, dtype=np.float32, copy=True)
    out[:, 1] *= -1
    return out


def export_triangles(triangles) -> np.ndarray:
    """(T, 3) model triangles ``(a, b, c)`` -> ``(a, c, b)``, counter-clockwise from the front in
    the export frame (outward normals)."""
    return np.ascontiguousarray(np.asarray(triangles)[:, [0, 2, 1]])


def _check(vertices, triangles, colors, uv):
    vertices = np.asarray(vertices, dtype=np.float32)
    triangles = np.asarray(triangles)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise InputError(f"mesh vertices must be (N, 3), got {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.issubdtype(triangles.dtype, np.integer):
        raise InputError(f"mesh triangles must be an integer (T, 3) array, got {triangles.shape} {triangles.dtype}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise InputError("mesh triangles refer to vertices that do not exist")
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != (len(vertices), 3):
            raise InputError(f"mesh colours must be (N, 3) = ({len(vertices)}, 3), got {colors.shape}")
        colors = np.clip(np.rint(colors), 0, 255).astype(np.uint8) if colors.dtype != np.uint8 else colors
    if uv is not None:
        uv = np.asarray(uv, dtype=np.float32)
        if uv.shape != (len(vertices), 2):
            raise InputError(f"mesh uv must be (N, 2) = ({len(vertices)}, 2), got {uv.shape}")
    return vertices, triangles.astype(np.int32), colors, uv


# ---------------------------------------------------------------------- PLY
def write_ply(path: str | os.PathLike, vertices, triangles, colors=None, *, binary: bool = True) -> Path:
    """Write a triangle mesh as PLY.

    Args:
        path: output file (folders are created).
        vertices: (N, 3) float vertex positions.
        triangles: (T, 3) int 0-based vertex ids.
        colors: optional (N, 3) RGB per vertex (uint8, or floats in 0..255).
        binary: ``binary_little_endian`` (default) or ``ascii``.
    """
    vertices, triangles, colors, _ = _check(vertices, triangles, colors, None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment written by ddfa",
              f"element vertex {len(vertices)}", "property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(triangles)}", "property list uchar int vertex_indices", "end_header"]
    head = ("\n".join(header) + "\n").encode("ascii")
    if binary:
        fields = [("xyz", "<f4", (3,))] + ([("rgb", "u1", (3,))] if colors is not None else [])
        vert = np.empty(len(vertices), dtype=fields)
        vert["xyz"] = vertices
        if colors is not None:
            vert["rgb"] = colors
        face = np.empty(len(triangles), dtype=[("n", "u1"), ("ids", "<i4", (3,))])
        face["n"] = 3
        face["ids"] = triangles
        with open(path, "wb") as handle:
            handle.write(head)
            handle.write(vert.tobytes())
            handle.write(face.tobytes())
    else:
        with open(path, "wb") as handle:
            handle.write(head)
            cols = [vertices] + ([colors.astype(np.float32)] if colors is not None else [])
            fmt = "%.6g %.6g %.6g" + (" %d %d %d" if colors is not None else "")
            np.savetxt(handle, np.concatenate(cols, axis=1), fmt=fmt)
            np.savetxt(handle, np.concatenate([np.full((len(triangles), 1), 3), triangles], axis=1), fmt="%d")
    return path


def read_ply(path: str | os.PathLike) -> Mesh:
    """Read a PLY triangle mesh with float/double ``x y z``, optional uchar ``red green blue``,
    and a ``vertex_indices`` list (binary little-endian or ASCII).

    Raises:
        InputError: not a PLY file, or one in a layout these readers do not understand.
    """
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file")
    try:
        return _parse_ply(path, data, end)
    except (KeyError, IndexError, ValueError, StopIteration) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: malformed or unsupported PLY ({type(exc).__name__}: {exc})") from None


def _parse_ply(path: Path, data: bytes, end: int) -> Mesh:
    body_start = data.index(b"\n", end) + 1
    lines = data[:end].decode("ascii", "replace").splitlines()
    fmt = next((ln.split()[1] for ln in lines if ln.startswith("format")), "")
    elements: list[tuple[str, int, list[tuple[str, ...]]]] = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property" and elements:
            elements[-1][2].append(tuple(parts[1:]))
    kinds = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
             "char": "i1", "int8": "i1", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2"}
    vertex_data: np.ndarray | None = None
    face_ids: np.ndarray | None = None
    if fmt == "ascii":
        tokens = data[body_start:].split()
        pos = 0
        for name, count, props in elements:
            if name == "vertex":
                n = len(props)
                vertex_data = np.array(tokens[pos:pos + count * n], dtype=np.float64).reshape(count, n)
                pos += count * n
            elif name == "face":
                rows = []
                for _ in range(count):
                    k = int(tokens[pos])
                    rows.append([int(t) for t in tokens[pos + 1:pos + 1 + k]])
                    pos += 1 + k
                face_ids = np.array(rows, dtype=np.int64).reshape(count, -1)
        if vertex_data is None:
            raise InputError(f"{path}: no vertex element")
        names = [p[-1] for p in next(e for e in elements if e[0] == "vertex")[2]]
        columns = {name: vertex_data[:, i] for i, name in enumerate(names)}
    elif fmt == "binary_little_endian":
        pos = body_start
        columns = {}
        for name, count, props in elements:
            if name == "face":
                prop = props[0]
                if prop[0] != "list":
                    raise InputError(f"{path}: unsupported face property {prop}")
                dtype = np.dtype([("n", "<" + kinds[prop[1]]), ("ids", "<" + kinds[prop[2]], (3,))])
                faces = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
                if count and np.any(faces["n"] != 3):
                    raise InputError(f"{path}: only triangle meshes are supported")
                face_ids = faces["ids"].astype(np.int64)
                pos += dtype.itemsize * count
            else:
                if any(p[0] == "list" for p in props):
                    raise InputError(f"{path}: unsupported list property in element {name!r}")
                dtype = np.dtype([(p[1], "<" + kinds[p[0]]) for p in props])
                table = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
                pos += dtype.itemsize * count
                if name == "vertex":
                    columns = {p[1]: table[p[1]] for p in props}
    else:
        raise InputError(f"{path}: unsupported PLY format {fmt!r}")
    if not columns or face_ids is None:
        raise InputError(f"{path}: no vertex or face element")
    vertices = np.stack([columns["x"], columns["y"], columns["z"]], axis=1).astype(np.float32)
    colors = None
    if all(c in columns for c in ("red", "green", "blue")):
        colors = np.stack([columns["red"], columns["green"], columns["blue"]], axis=1).astype(np.uint8)
    return Mesh(vertices, face_ids, colors)


# ---------------------------------------------------------------------- OBJ
def write_obj(path: str | os.PathLike, vertices, triangles, colors=None, uv=None, texture=None) -> list[Path]:
    """Write a triangle mesh as OBJ, optionally with per-vertex colours, UVs and a texture.

    Args:
        path: the ``.obj`` file (folders are created).
        vertices: (N, 3) float positions.
        triangles: (T, 3) int 0-based vertex ids.
        colors: optional (N, 3) RGB per vertex (uint8 or floats in 0..255), written as
            ``v x y z r g b`` with r, g, b in [0, 1].
        uv: optional (N, 2) texture coordinates in [0, 1], v up.
        texture: optional (S, S, 3) uint8 **BGR** texture image (needs ``uv``): written as
            ``<stem>_texture.png`` with ``<stem>.mtl`` naming it.

    Returns:
        the files written (.obj, then .mtl and .png when textured).
    """
    vertices, triangles, colors, uv = _check(vertices, triangles, colors, uv)
    if texture is not None and uv is None:
        raise InputError("an OBJ texture needs per-vertex uv coordinates")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    lines = ["# written by ddfa"]
    if texture is not None:
        from .image import write_image

        mtl = path.with_suffix(".mtl")
        png = path.with_name(path.stem + "_texture.png")
        write_image(png, np.asarray(texture))
        mtl.write_text("# written by ddfa\nnewmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                       f"map_Kd {png.name}\n")
        written += [mtl, png]
        lines += [f"mtllib {mtl.name}"]
    body = [("\n".join(lines) + "\n").encode()]
    if colors is not None:
        table = np.concatenate([vertices, colors.astype(np.float32) / 255.0], axis=1)
        body.append(_format_rows("v", table, "%.6g"))
    else:
        body.append(_format_rows("v", vertices, "%.6g"))
    ids = triangles.astype(np.int64) + 1
    if uv is not None:
        body.append(_format_rows("vt", uv, "%.6g"))
        if texture is not None:
            body.append(b"usemtl face\n")
        faces = np.repeat(ids, 2, axis=1)  # a/a b/b c/c
        body.append(_format_rows("f", faces, "%d/%d %d/%d %d/%d", columns=False))
    else:
        body.append(_format_rows("f", ids, "%d"))
    with open(path, "wb") as handle:
        handle.writelines(body)
    return written


def _format_rows(tag: str, table: np.ndarray, fmt: str, columns: bool = True) -> bytes:
    if not len(table):
        return b""
    row_fmt = f"{tag} " + (" ".join([fmt] * table.shape[1]) if columns else fmt) + "\n"
    return (row_fmt * len(table) % tuple(table.ravel().tolist())).encode()


def read_obj(path: str | os.PathLike) -> Mesh:
    """Read an OBJ triangle mesh: ``v`` (with optional r g b), ``vt``, and ``f`` entries whose
    texture ids, if any, equal their vertex ids (as :func:`write_obj` writes them).

    Raises:
        InputError: a line these readers do not understand (non-triangles, bad numbers).
    """
    path = Path(path)
    try:
        return _parse_obj(path)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: malformed or unsupported OBJ ({type(exc).__name__}: {exc})") from None


def _parse_obj(path: Path) -> Mesh:
    verts, colors, uv, faces = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            if tag == "v":
                values = [float(p) for p in parts[1:]]
                verts.append(values[:3])
                if len(values) >= 6:
                    colors.append(values[3:6])
            elif tag == "vt":
                uv.append([float(p) for p in parts[1:3]])
            elif tag == "f":
                ids = [int(p.split("/")[0]) for p in parts[1:]]
                if len(ids) != 3:
                    raise InputError(f"{path}: only triangle meshes are supported")
                faces.append(ids)
    vertices = np.asarray(verts, dtype=np.float32).reshape(-1, 3)
    triangles = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    triangles = np.where(triangles < 0, triangles + len(vertices), triangles - 1)
    mesh_colors = None
    if colors and len(colors) == len(vertices):
        mesh_colors = np.clip(np.rint(np.asarray(colors) * 255), 0, 255).astype(np.uint8)
    mesh_uv = np.asarray(uv, dtype=np.float32) if uv and len(uv) == len(vertices) else None
    return Mesh(vertices, triangles, mesh_colors, mesh_uv)
