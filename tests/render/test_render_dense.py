"""Dense outputs on the shared photos: depth, PNCC, shading, normals, overlays, the registry."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.render import (
    OUTPUTS,
    draw_dense,
    draw_pose,
    paf_anchors,
    paf_features,
    rasterize,
    render_depth,
    render_output,
    render_pncc,
    render_shaded,
    uv_texture,
    vertex_normals,
    write_outputs,
)
from ddfa.render.assets import NCC_NONECK, assets_of, render_assets
from ddfa.render.draw import pose_box


@pytest.fixture(scope="module")
def jianzhu(aligner, example_images):
    image = ddfa.read_image(example_images["JianzhuGuo.jpg"])
    faces = aligner(image)
    assert len(faces) == 1
    return image, faces


@pytest.fixture(scope="module")
def debate(aligner, example_images):
    image = ddfa.read_image(example_images["trump_hillary.jpg"])
    faces = aligner(image)
    assert len(faces) == 2
    return image, faces


def _pixel(point):
    return int(round(float(point[1]))), int(round(float(point[0])))


def test_depth_is_larger_nearer_the_camera_and_zero_off_the_face(jianzhu):
    image, faces = jianzhu
    face = faces[0]
    depth = render_depth(image, faces)
    assert depth.shape == image.shape[:2] and depth.dtype == np.float32
    mask = rasterize(face.vertices, face.triangles, *image.shape[:2]).mask
    assert np.all(depth[~mask] == 0) and depth[mask].min() >= 0 and depth.max() <= 1
    nose = depth[_pixel(face.landmarks[30])]  # nose tip
    cheeks = [depth[_pixel((face.landmarks[k] + face.landmarks[k2]) / 2)] for k, k2 in ((2, 31), (14, 35))]
    assert nose > 0.9 and all(0 < c < nose - 0.1 for c in cheeks), (nose, cheeks)
    raw = render_depth(image, faces, normalize=False)
    assert np.all(np.isnan(raw[~mask])) and np.isfinite(raw[mask]).all()
    # raw depth is image-frame z: at the nose tip, within a pixel of the landmark's own z
    assert raw[_pixel(face.landmarks[30])] == pytest.approx(face.landmarks[30, 2], abs=1.5)
    np.testing.assert_array_equal(face.depth_map(image), depth)


def test_nearer_face_hides_the_farther_one(jianzhu):
    image, faces = jianzhu
    face = faces[0]

    class Moved:  # the same face shifted right and brought nearer: it must win where they overlap
        vertices = face.vertices + np.array([40, 0, 200], np.float32)
        triangles = face.triangles
        model = face.model

    depth = render_depth(image, [face, Moved], normalize=False)
    overlap = _pixel(face.landmarks[30] + np.array([40, 0, 0]))
    assert depth[overlap] > face.vertices[:, 2].max()
    alone = render_depth(image.shape[:2], [face], normalize=False)
    assert alone[overlap] < face.vertices[:, 2].max() + 1


def test_pncc_at_landmarks_is_the_ncc_code_of_those_vertices(jianzhu, store):
    image, faces = jianzhu
    face = faces[0]
    pncc = render_pncc(image, faces)
    assert pncc.shape == image.shape[:2] + (3,) and pncc.dtype == np.float32
    code = render_assets(store).ncc_code(face.model)[face.model.landmark_vertices]
    raw = render_depth(image, faces, normalize=False)
    checked = 0
    for k, point in enumerate(face.landmarks):
        row, col = _pixel(point)
        if not (0 <= row < image.shape[0] and 0 <= col < image.shape[1]) or not abs(raw[row, col] - point[2]) <= 2:
            continue  # off the image or the mesh (jaw outline), or hidden behind another part of the face
        np.testing.assert_allclose(pncc[row, col], code[k], atol=0.02, err_msg=f"landmark {k}")
        checked += 1
    assert checked >= 45
    mask = np.isfinite(raw)
    assert np.all(pncc[~mask] == 0)
    np.testing.assert_array_equal(face.pncc(image), pncc)


def test_ncc_codes_are_the_normalised_mean_shapes(store, noneck_model, full_model):
    assets = render_assets(store)
    ncc = assets.ncc_code(noneck_model)
    scaled = (noneck_model.mean - noneck_model.mean.min(0)) / np.ptp(noneck_model.mean, axis=0)
    np.testing.assert_allclose(ncc, scaled, atol=1e-6)
    u_shp = store.load_npy("3DDFA/train.configs/u_shp.npy").reshape(-1, 3)
    np.testing.assert_allclose(assets.ncc_code(full_model), (u_shp - u_shp.min(0)) / np.ptp(u_shp, axis=0), atol=1e-6)


def test_render_assets_come_from_the_face_and_are_cached_by_content(jianzhu, store, noneck_model, tmp_path):
    _, faces = jianzhu
    face = faces[0]
    # the aligner's store travels with its faces; an explicit assets= wins
    assert face.assets is not None and face.assets.root.resolve() == store.root.resolve()
    assert assets_of(face).store is face.assets
    assert assets_of(face, tmp_path).store.root == tmp_path
    assert assets_of(object()).store.root == ddfa.AssetStore().root  # no store anywhere: the default root
    # keyed on the file's content: another root holding the same file shares the loaded array
    (tmp_path / NCC_NONECK).parent.mkdir(parents=True)
    (tmp_path / NCC_NONECK).write_bytes((store.root / NCC_NONECK).read_bytes())
    code = render_assets(store).ncc_code(noneck_model)
    assert render_assets(tmp_path).ncc_code(noneck_model) is code and not code.flags.writeable
    ddfa.clear_caches()
    again = render_assets(tmp_path).ncc_code(noneck_model)
    assert again is not code
    np.testing.assert_array_equal(again, code)
    with pytest.raises(ddfa.AssetError):  # a root without the file
        render_assets(tmp_path / "empty").ncc_code(noneck_model)


def test_render_functions_take_the_image_first(jianzhu):
    image, faces = jianzhu
    with pytest.raises(ddfa.InputError, match=r"render_depth\(image_or_shape, faces\)"):
        render_depth(faces, image)
    with pytest.raises(ddfa.InputError, match=r"render_pncc\(image_or_shape, faces\)"):
        render_pncc(faces, image.shape)
    np.testing.assert_array_equal(render_depth(image.shape, faces), render_depth(image, faces))


def test_normals_point_out_of_the_face(jianzhu):
    _, faces = jianzhu
    face = faces[0]
    normals = vertex_normals(face.vertices, face.triangles)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-4)
    nose = face.model.landmark_vertices[30]
    assert normals[nose, 2] > 0.8 and (normals[:, 2] > 0).mean() > 0.8
    # in the y-up model frame, frame="model" gives the same outward normals with y negated (the
    # roi is square, so model -> image is a similarity and a reflection of y)
    model_normals = vertex_normals(face.model.vertices(face.params), face.triangles, frame="model")
    np.testing.assert_allclose(model_normals, normals * np.float32([1, -1, 1]), atol=2e-3)
    assert model_normals[nose, 2] > 0.8
    with pytest.raises(ddfa.InputError, match="frame"):
        vertex_normals(face.vertices, face.triangles, frame="camera")


def test_shaded_mesh_changes_exactly_the_covered_pixels(debate):
    image, faces = debate
    out = render_shaded(image, faces, alpha=1.0)
    assert out.shape == image.shape and out.dtype == np.uint8
    vertices = np.stack([f.vertices for f in faces])
    mask = rasterize(vertices, faces[0].triangles, *image.shape[:2]).mask
    np.testing.assert_array_equal(out[~mask], image[~mask])
    shade = out[mask].astype(int)
    assert np.abs(shade[:, 0] - shade[:, 2]).max() <= 1  # grey
    assert 60 < shade.mean() < 240 and shade.std() > 10  # lit, with shading variation
    blended = render_shaded(image, faces)
    assert np.abs(blended[mask].astype(int) - image[mask]).mean() > 5
    # both faces are drawn
    for face in faces:
        assert mask[_pixel(face.landmarks[30])]
    with pytest.raises(ddfa.InputError):
        render_shaded(image[:, :, 0], faces)


def test_overlays_draw_on_the_face_only(debate):
    image, faces = debate
    dense = draw_dense(image, faces)
    changed = np.any(dense != image, axis=2)
    rows, cols = np.nonzero(changed)
    for face in faces:
        x0, y0 = face.vertices[:, :2].min(0) - 2
        x1, y1 = face.vertices[:, :2].max(0) + 2
        inside = (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
        assert inside.sum() > 1000
    pose = draw_pose(image, faces)
    assert np.any(pose != image)
    for face in faces:
        box = pose_box(face)
        assert box.shape == (8, 2)
        # the small front rectangle is centred near the nose for these near-frontal faces
        front = box[4:].mean(0)
        assert np.linalg.norm(front - face.landmarks[30, :2]) < 0.5 * (face.roi_box[2] - face.roi_box[0])


def test_uv_texture_puts_photo_colours_at_their_uv_place(jianzhu, store):
    image, faces = jianzhu
    face = faces[0]
    tex = uv_texture(image, face, 256)
    assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8
    assert (tex.sum(axis=2) > 0).mean() > 0.3
    uv = render_assets(store).uv_coords(face.model)
    for k in (30, 36, 45, 48, 54):  # nose tip, eye corners, mouth corners
        vid = face.model.landmark_vertices[k]
        col, row = int(round(uv[vid, 0] * 255)), int(round((1 - uv[vid, 1]) * 255))
        texel = tex[row, col].astype(int)
        photo = image[_pixel(face.vertices[vid])].astype(int)
        assert np.abs(texel - photo).max() < 40, (k, texel, photo)
    np.testing.assert_array_equal(face.uv_texture(image, 64), uv_texture(image, face, 64))


def test_paf_samples_the_photo_at_the_projected_anchor_grid(jianzhu):
    image, faces = jianzhu
    face = faces[0]
    anchors = paf_anchors(face)
    assert anchors.shape == (64, 64, 3)
    roi = face.roi_box
    assert np.all((anchors[..., 0] > roi[0]) & (anchors[..., 0] < roi[2]))
    assert np.all((anchors[..., 1] > roi[1]) & (anchors[..., 1] < roi[3]))
    # the grid is ordered: rows go down the face, columns to the image right (a projected
    # surface may fold slightly at the nose)
    assert (np.diff(anchors[:, 32, 1]) > 0).mean() > 0.9 and (np.diff(anchors[32, :, 0]) > 0).mean() > 0.9
    assert anchors[-1, 32, 1] - anchors[0, 32, 1] > 100 and anchors[32, -1, 0] - anchors[32, 0, 0] > 100
    plain = paf_features(image, face, 1)
    assert plain.shape == (64, 64, 3)
    r, c = 20, 40
    x, y = anchors[r, c, :2]
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    patch = image[y0:y0 + 2, x0:x0 + 2].astype(float)
    expected = (patch[0, 0] * (1 - fx) * (1 - fy) + patch[0, 1] * fx * (1 - fy)
                + patch[1, 0] * (1 - fx) * fy + patch[1, 1] * fx * fy)
    assert np.abs(plain[r, c] - expected).max() <= 2
    wide = face.paf(image)  # 3x3 patches: the centres are the plain map
    assert wide.shape == (192, 192, 3)
    np.testing.assert_array_equal(wide[1::3, 1::3], plain)


def test_every_registered_output_renders_and_writes(jianzhu, tmp_path):
    image, faces = jianzhu
    expected = {"2d_sparse", "2d_dense", "3d", "depth", "depth_raw", "pncc", "pose", "uv_tex", "paf", "ply", "obj"}
    assert expected <= set(OUTPUTS)
    assert all(OUTPUTS[name].description for name in expected)
    assert not OUTPUTS["uv_tex"].frame_sized and all(OUTPUTS[n].frame_sized for n in expected - {"uv_tex"}
                                                      if OUTPUTS[n].kind == "image")
    for name, spec in OUTPUTS.items():
        if spec.kind != "image":
            continue
        out = render_output(name, image, faces)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
        assert (out.shape == image.shape) == spec.frame_sized, name  # the registry says which are photo-sized
        assert render_output(name, image, []).dtype == np.uint8, name  # no faces: still an image
    written = write_outputs(sorted(expected), image, faces, tmp_path, "photo")
    names = {p.name for p in written}
    assert {"photo_3d.png", "photo_depth.npy", "photo_face0.ply", "photo_face0.obj", "photo_face0.mtl",
            "photo_face0_texture.png", "photo_uv_tex.png"} <= names
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    raw = np.load(tmp_path / "photo_depth.npy")
    assert raw.shape == image.shape[:2] and np.isfinite(raw).sum() > 10000


def test_faces_of_different_meshes_render_together(jianzhu, full_model, store):
    from ddfa.morphable.frames import model_to_image

    image, faces = jianzhu
    face = faces[0]

    class FullFace:  # the same parameters on the 53,215-vertex mesh, shifted right
        model = full_model
        triangles = full_model.triangles
        vertices = (model_to_image(full_model.vertices(face.params), face.roi_box)
                    + np.array([150, 0, 0], np.float32)).astype(np.float32)

    pncc = render_pncc(image, [face, FullFace], assets=store)
    depth = render_depth(image, [face, FullFace])
    for f, code in ((face, render_assets(store).ncc_code(face.model)),
                    (FullFace, render_assets(store).ncc_code(full_model))):
        nose = f.model.landmark_vertices[30]
        pixel = _pixel(f.vertices[nose])
        np.testing.assert_allclose(pncc[pixel], code[nose], atol=0.02)
        assert depth[pixel] > 0.9
