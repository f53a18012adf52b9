"""The z-buffered rasteriser: exact against a brute-force reference, occlusion between meshes,
the Raster API, bad input, and a real dense face (3DDFA's own output for image00427)."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.errors import InputError
from ddfa.render import Raster, rasterize


def brute_force(vertices, triangles, height, width, cull=False):
    """Per pixel, per triangle, in float64: the obvious z-buffer."""
    verts = np.asarray(vertices, np.float64)
    verts = verts[None] if verts.ndim == 2 else verts
    depth = np.full((height, width), -np.inf)
    tri_index = np.full((height, width), -1)
    face_index = np.full((height, width), -1)
    ys, xs = np.mgrid[0:height, 0:width]
    for f, mesh in enumerate(verts):
        for t, (a, b, c) in enumerate(triangles):
            p0, p1, p2 = mesh[a], mesh[b], mesh[c]
            area = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p2[0] - p0[0]) * (p1[1] - p0[1])
            if area == 0 or (cull and area <= 0):
                continue
            b0 = ((p1[0] - xs) * (p2[1] - ys) - (p2[0] - xs) * (p1[1] - ys)) / area
            b1 = ((p2[0] - xs) * (p0[1] - ys) - (p0[0] - xs) * (p2[1] - ys)) / area
            b2 = 1 - b0 - b1
            inside = (b0 >= -1e-5) & (b1 >= -1e-5) & (b2 >= -1e-5)
            z = b0 * p0[2] + b1 * p1[2] + b2 * p2[2]
            nearer = inside & (z > depth)
            depth[nearer], tri_index[nearer], face_index[nearer] = z[nearer], t, f
    return depth, tri_index, face_index


def random_meshes(rng, faces, triangles, spread, height, width):
    """Triangles scattered over (and past) the image, of about ``spread`` pixels."""
    centres = rng.uniform([-5, -5], [width + 5, height + 5], (triangles, 2))
    verts = np.zeros((faces, 3 * triangles, 3), np.float32)
    verts[:, :, :2] = np.repeat(centres, 3, axis=0)[None] + rng.normal(0, spread, (faces, 3 * triangles, 2))
    verts[:, :, 2] = rng.uniform(-20, 20, (faces, 3 * triangles))
    return verts, np.arange(3 * triangles).reshape(-1, 3)


@pytest.mark.parametrize("spread", [0.7, 2.0, 6.0, 25.0])  # 1-px, windowed and enumerated boxes
def test_matches_brute_force_z_buffer(spread):
    rng = np.random.default_rng(int(spread * 10))
    height, width = 37, 53
    verts, tris = random_meshes(rng, 2, 60 if spread > 1 else 400, spread, height, width)
    raster = rasterize(verts, tris, height, width)
    depth, tri_index, face_index = brute_force(verts, tris, height, width)
    covered = np.isfinite(depth)
    # a pixel centre within float32 rounding of an edge may go either way: allow a handful
    assert (raster.mask != covered).sum() <= 2
    both = covered & raster.mask
    assert both.sum() > 40
    np.testing.assert_allclose(raster.depth[both], depth[both], atol=1e-3)
    agree = (raster.triangle_index[both] == tri_index[both]) & (raster.face_index[both] == face_index[both])
    assert agree.mean() > 0.995  # exact z ties (shared edges) may go to either triangle


def test_cull_backfaces_keeps_positive_area_triangles():
    rng = np.random.default_rng(5)
    verts, tris = random_meshes(rng, 1, 80, 4.0, 40, 40)
    raster = rasterize(verts, tris, 40, 40, cull_backfaces=True)
    depth, tri_index, _ = brute_force(verts, tris, 40, 40, cull=True)
    assert (raster.mask != np.isfinite(depth)).sum() <= 2
    assert raster.mask.sum() > 0


def test_raster_api_buffers_and_interpolation():
    # two squares (two triangles each); the second nearer and overlapping the first
    square = np.array([[2, 2, 0], [12, 2, 0], [12, 12, 0], [2, 12, 0]], np.float32)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    near = square + np.array([5, 5, 10], np.float32)
    raster = rasterize(np.stack([square, near]), tris, 20, 20)
    assert isinstance(raster, Raster) and raster.shape == (20, 20)
    assert raster.depth.dtype == np.float32 and raster.face_index.dtype == np.int32
    assert raster.triangle_index.dtype == np.int32 and raster.barycentric.shape == (20, 20, 3)
    assert raster.face_index[3, 3] == 0 and raster.face_index[10, 10] == 1 and raster.face_index[15, 15] == 1
    assert raster.depth[10, 10] == 10 and raster.depth[3, 3] == 0
    assert raster.depth[0, 0] == -np.inf and raster.face_index[0, 0] == -1 and raster.triangle_index[0, 0] == -1
    assert np.all(raster.barycentric[0, 0] == 0)
    np.testing.assert_allclose(raster.barycentric[raster.mask].sum(axis=1), 1, atol=1e-6)
    # the covered set: squares of 11 x 11 pixel centres overlapping in 6 x 6
    assert raster.mask.sum() == 2 * 121 - 36 == len(raster.pixels)
    # interpolating x, y reproduces the pixel centres
    xy = raster.interpolate(np.stack([square, near])[:, :, :2], tris)
    rows, cols = np.nonzero(raster.mask)
    np.testing.assert_allclose(xy[rows, cols], np.stack([cols, rows], axis=1), atol=1e-4)
    assert np.all(xy[~raster.mask] == 0)
    shared = raster.interpolate(square[:, 2], tris, background=-1)  # (N,) attribute shared by both
    assert shared.shape == (20, 20, 1) and shared[0, 0, 0] == -1 and shared[10, 10, 0] == 0


def test_off_image_degenerate_and_empty_inputs():
    tris = np.array([[0, 1, 2]])
    off = rasterize(np.array([[-50, -50, 0], [-40, -50, 0], [-45, -40, 0]], np.float32), tris, 10, 10)
    assert not off.mask.any() and off.depth.shape == (10, 10)
    flat = rasterize(np.array([[1, 1, 0], [5, 5, 0], [9, 9, 0]], np.float32), tris, 10, 10)
    assert not flat.mask.any()
    assert not rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), 4, 4).mask.any()
    # a triangle clipped by the image border covers exactly the in-image pixels
    big = rasterize(np.array([[-100, -100, 1], [300, -100, 1], [-100, 300, 1]], np.float32), tris, 8, 9)
    assert big.mask.all() and np.all(big.depth == 1)


@pytest.mark.parametrize("vertices, triangles, size, words", [
    (np.zeros((5, 2)), np.zeros((1, 3), int), (4, 4), "(N, 3)"),
    (np.zeros((5, 3)), np.zeros((1, 4), int), (4, 4), "(T, 3)"),
    (np.zeros((5, 3)), np.array([[0, 1, 5]]), (4, 4), "[0, 5)"),
    (np.zeros((5, 3)), np.zeros((1, 3), int), (0, 4), "positive"),
    (np.full((3, 3), np.nan), np.array([[0, 1, 2]]), (4, 4), "NaN"),
])
def test_bad_input_raises_one_line_input_error(vertices, triangles, size, words):
    with pytest.raises(InputError) as info:
        rasterize(vertices, triangles, *size)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def reference_face(store, full_model):
    """3DDFA's own dense output for image00427 (v1 image frame: 1-based) -> ddfa's frame."""
    vertex = store.load_mat("3DDFA/visualize/image00427.mat")["vertex"].T.astype(np.float32)
    vertex[:, :2] -= 1
    return vertex, full_model.triangles


def test_real_face_silhouette_covers_the_dense_vertices(reference_face):
    import cv2

    vertices, triangles = reference_face
    raster = rasterize(vertices, triangles, 256, 714)
    # the region the vertices cover: their pixels, closed by 1 px
    footprint = np.zeros((256, 714), np.uint8)
    ij = np.rint(vertices[:, :2]).astype(int)
    ij = ij[(ij[:, 0] >= 0) & (ij[:, 0] < 714) & (ij[:, 1] >= 0) & (ij[:, 1] < 256)]  # the face leaves the top
    footprint[ij[:, 1], ij[:, 0]] = 1
    footprint = cv2.morphologyEx(footprint, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    mask = raster.mask
    iou = (mask & footprint).sum() / (mask | footprint).sum()
    assert iou > 0.93, iou
    near_mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert near_mask[ij[:, 1], ij[:, 0]].mean() > 0.999
    # the nearest surface: at every covered pixel the depth is the maximum z of the vertices there
    nose = vertices[np.argmax(vertices[:, 2])]
    assert raster.depth[int(round(nose[1])), int(round(nose[0]))] == pytest.approx(nose[2], abs=1.0)


def test_real_face_depth_matches_brute_force_on_a_patch(reference_face):
    vertices, triangles = reference_face
    # crop a 24x24 patch around the nose and compare with the brute force on the triangles there
    nose = vertices[np.argmax(vertices[:, 2])]
    x0, y0 = int(nose[0]) - 12, int(nose[1]) - 12
    local = vertices - np.array([x0, y0, 0], np.float32)
    near = np.all((local[triangles][:, :, :2] > -3) & (local[triangles][:, :, :2] < 27), axis=(1, 2))
    tris = triangles[near]
    raster = rasterize(local, tris, 24, 24)
    depth, _, _ = brute_force(local, tris, 24, 24)
    covered = np.isfinite(depth)
    assert covered.all() and raster.mask.all()
    np.testing.assert_allclose(raster.depth, depth, atol=1e-3)
