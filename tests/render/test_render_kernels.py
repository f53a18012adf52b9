"""The numba kernels behind the renderer: shading against a plain numpy reference, normals,
scratch memory that is reused but never leaks into results, threads, read-only inputs, the
JIT cache fallback and bad input. Real data: 3DDFA's own dense output for image00427."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ddfa
from ddfa.errors import InputError
from ddfa.render import raster as raster_module
from ddfa.render import rasterize, render_depth, render_shaded, vertex_normals
from ddfa.render.dense import LIGHT_DIRECTION


class Mesh:
    """A face-like record: image-frame vertices and the model's triangles."""

    def __init__(self, vertices, triangles):
        self.vertices = vertices
        self.triangles = triangles


@pytest.fixture(scope="module")
def face427(store, full_model, example_images):
    """3DDFA's dense output for image00427 (v1 image frame: 1-based -> ddfa's 0-based) and
    the photo."""
    vertex = store.load_mat("3DDFA/visualize/image00427.mat")["vertex"].T.astype(np.float32)
    vertex[:, :2] -= 1
    image = ddfa.read_image(example_images["image00427.jpg"])
    return image, Mesh(vertex, full_model.triangles)


def numpy_normals(vertices, triangles):
    """Area-weighted unit vertex normals with np.add.at (the plain reference)."""
    v = vertices.astype(np.float64)
    corners = v[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    summed = np.zeros_like(v)
    for k in range(3):
        np.add.at(summed, triangles[:, k], normals)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.divide(summed, length, out=np.zeros_like(summed), where=length > 0)


def numpy_shaded(image, vertices, triangles, alpha=0.6, color=(0.85, 0.85, 0.85), shininess=16.0):
    """render_shaded's documented formula, from the public Raster and numpy normals."""
    raster = rasterize(vertices, triangles, *image.shape[:2])
    normals = numpy_normals(vertices, triangles)
    normals *= np.where(normals[:, 2:] < 0, -1.0, 1.0)  # two-sided lighting
    light = np.asarray(LIGHT_DIRECTION, np.float64) / np.linalg.norm(LIGHT_DIRECTION)
    half = light + [0, 0, 1]
    half /= np.linalg.norm(half)
    intensity = 0.3 + 0.65 * np.clip(normals @ light, 0, 1)
    gloss = 0.15 * np.clip(normals @ half, 0, 1) ** shininess
    shade = raster.interpolate_pixels(np.stack([intensity, gloss], axis=1), triangles).astype(np.float64)
    photo = image.reshape(-1, 3)[raster.pixels].astype(np.float64)
    blended = photo * (1 - alpha) + shade[:, :1] * 255 * alpha * np.asarray(color) + shade[:, 1:] * 255 * alpha
    out = image.copy().reshape(-1, 3)
    out[raster.pixels] = np.floor(np.clip(blended, 0, 255) + 0.5)
    return out.reshape(image.shape)


def test_vertex_normals_match_numpy_reference(face427):
    _, mesh = face427
    normals = vertex_normals(mesh.vertices, mesh.triangles)
    assert normals.shape == mesh.vertices.shape and normals.dtype == np.float32
    np.testing.assert_allclose(normals, numpy_normals(mesh.vertices, mesh.triangles), atol=2e-4)
    batched = vertex_normals(np.stack([mesh.vertices, mesh.vertices + 5]), mesh.triangles)
    np.testing.assert_allclose(batched[1], normals, atol=2e-4)  # a shift does not turn normals


@pytest.mark.parametrize("shininess", [16.0, 7.5])  # integer powers by squaring, others by pow
def test_shaded_matches_numpy_reference(face427, shininess):
    image, mesh = face427
    out = render_shaded(image, [mesh], shininess=shininess)
    expected = numpy_shaded(image, mesh.vertices, mesh.triangles, shininess=shininess)
    diff = np.abs(out.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_scratch_memory_never_leaks_into_results(face427):
    image, mesh = face427
    raster = rasterize(mesh.vertices, mesh.triangles, *image.shape[:2])
    kept = {name: getattr(raster, name).copy() for name in ("pixels", "pixel_depth", "pixel_triangle",
                                                             "pixel_barycentric")}
    assert np.all(np.diff(raster.pixels) > 0)  # row-major order
    first = render_shaded(image, [mesh])
    moved = Mesh(mesh.vertices + np.array([40, 10, 0], np.float32), mesh.triangles)
    render_shaded(image, [moved])  # reuses this thread's z-buffer and raster scratch
    render_depth(image, [moved])
    for name, value in kept.items():  # a public Raster owns its arrays
        np.testing.assert_array_equal(getattr(raster, name), value, err_msg=name)
    np.testing.assert_array_equal(render_shaded(image, [mesh]), first)


def test_threads_render_independently(face427):
    image, mesh = face427
    shifts = [np.array([dx, 0, 0], np.float32) for dx in (-30, 0, 30, 60)]
    expected = [render_shaded(image, [Mesh(mesh.vertices + s, mesh.triangles)]) for s in shifts]
    results = [None] * len(shifts)

    def work(k):
        for _ in range(2):
            results[k] = render_shaded(image, [Mesh(mesh.vertices + shifts[k], mesh.triangles)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(shifts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_read_only_and_other_dtypes_give_the_same_raster(face427):
    image, mesh = face427
    raster = rasterize(mesh.vertices, mesh.triangles, *image.shape[:2])
    vertices, triangles = mesh.vertices.astype(np.float64), mesh.triangles.astype(np.int64)
    vertices.flags.writeable = triangles.flags.writeable = False
    other = rasterize(vertices, triangles, *image.shape[:2])
    np.testing.assert_array_equal(other.pixels, raster.pixels)
    np.testing.assert_array_equal(other.pixel_triangle, raster.pixel_triangle)
    np.testing.assert_array_equal(other.pixel_depth, raster.pixel_depth)


def test_empty_meshes_and_far_vertices():
    tris = np.array([[0, 1, 2]])
    for vertices, triangles in ((np.zeros((0, 3)), np.zeros((0, 3), int)), (np.zeros((0, 3, 3)), tris),
                                (np.zeros((3, 3)), np.zeros((0, 3), int))):
        empty = rasterize(vertices, triangles, 5, 6)
        assert empty.pixels.shape == (0,) and empty.pixel_barycentric.shape == (0, 3) and not empty.mask.any()
    with pytest.raises(InputError, match="within"):
        rasterize(np.array([[0, 0, 0], [3e9, 0, 0], [0, 4, 0]], np.float32), tris, 8, 8)


def test_bad_input_to_normals_and_interpolation(face427):
    _, mesh = face427
    with pytest.raises(InputError, match="vertex_normals"):
        vertex_normals(mesh.vertices[:, :2], mesh.triangles)
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        vertex_normals(np.zeros((4, 3)), np.array([[0, 1, 4]]))
    raster = rasterize(mesh.vertices, mesh.triangles, 256, 256)
    with pytest.raises(InputError, match="do not fit"):
        raster.interpolate_pixels(mesh.vertices[:100], mesh.triangles)
    with pytest.raises(InputError, match="do not fit"):
        raster.interpolate_pixels(mesh.vertices, mesh.triangles[:10])


def test_jit_falls_back_to_no_disk_cache(monkeypatch):
    """Where numba finds no writable cache folder (read-only install, no NUMBA_CACHE_DIR), the
    kernels are compiled per process instead of failing at import."""
    import numba

    real_njit = numba.njit
    calls = []

    def njit(*args, cache=False, **kwargs):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return real_njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)

    def twice(x):
        return 2 * x

    assert raster_module._jit(twice)(21) == 42 and calls == [True, False]


def test_importing_the_registry_does_not_load_numba():
    """``ddfa.render`` and its output registry are imported by ``ddfa align``/``ddfa video`` (and
    their ``--help``): the numba kernels load only when something is rendered."""
    import subprocess
    import sys

    code = ("import sys, ddfa.render, ddfa.render.outputs, ddfa.video; "
            "assert ddfa.render.OUTPUTS is ddfa.render.outputs.OUTPUTS; "
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('numba.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
