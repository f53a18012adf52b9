"""PLY/OBJ export: round trips, standard readers (trimesh), frame and normals."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.errors import InputError
from ddfa.io.mesh import image_to_export_frame, read_obj, read_ply, write_obj, write_ply


def load_mesh(*args, **kwargs):
    """trimesh's reader (imported on use: ~1 s that test processes not running this file skip;
    the test is skipped where trimesh is not installed, as the module-level import did)."""
    return pytest.importorskip("trimesh").load(*args, **kwargs)


@pytest.fixture(scope="module")
def photo_face(aligner, example_images):
    image = ddfa.read_image(example_images["JianzhuGuo.jpg"])
    return image, aligner(image)[0]


@pytest.fixture(scope="module")
def full_face(assets_dir, example_images):
    aligner = ddfa.FaceAligner(assets=assets_dir, mesh="full", precision="f32")
    image = ddfa.read_image(example_images["JianzhuGuo.jpg"])
    return image, aligner(image)[0]


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_equals_the_mesh(tmp_path, photo_face, binary):
    image, face = photo_face
    path = face.save_ply(tmp_path / "face.ply", image, binary=binary)
    mesh = read_ply(path)
    expected = image_to_export_frame(face.vertices)
    np.testing.assert_allclose(mesh.vertices, expected, atol=0 if binary else 1e-3)
    np.testing.assert_array_equal(mesh.triangles, face.triangles[:, [0, 2, 1]])
    np.testing.assert_array_equal(mesh.colors, face.vertex_colors(image)[:, ::-1])  # RGB in the file
    loaded = load_mesh(path, process=False)
    assert len(loaded.vertices) == 38365 and len(loaded.faces) == 76073
    np.testing.assert_allclose(loaded.vertices, expected, atol=1e-3)
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], mesh.colors)


def test_exported_normals_point_out_of_the_face(tmp_path, photo_face):
    image, face = photo_face
    loaded = load_mesh(face.save_ply(tmp_path / "face.ply"), process=False)
    assert not loaded.is_watertight  # an open face surface
    # export frame: x right, y up, z towards the viewer; the face looks at the camera
    normals = loaded.vertex_normals
    assert (normals[:, 2] > 0).mean() > 0.8
    nose = face.model.landmark_vertices[30]
    assert normals[nose, 2] > 0.8
    # the exported frame is upright: the forehead is above the chin
    lm = face.model.landmark_vertices
    assert loaded.vertices[lm[27], 1] > loaded.vertices[lm[8], 1]
    # and right-handed with the photo's left-right: the face's image-left eye is at smaller x
    assert loaded.vertices[lm[36], 0] < loaded.vertices[lm[45], 0]


def test_obj_round_trip_with_texture(tmp_path, full_face):
    image, face = full_face
    written = face.save_obj(tmp_path / "face.obj", image, texture_size=128)
    assert [p.name for p in written] == ["face.obj", "face.mtl", "face_texture.png"]
    mesh = read_obj(written[0])
    np.testing.assert_allclose(mesh.vertices, image_to_export_frame(face.vertices), atol=1e-3)
    np.testing.assert_array_equal(mesh.triangles, face.triangles[:, [0, 2, 1]])
    assert np.abs(mesh.colors.astype(int) - face.vertex_colors(image)[:, ::-1]).max() <= 1
    assert mesh.uv.shape == (53215, 2) and mesh.uv.min() >= 0 and mesh.uv.max() <= 1
    loaded = load_mesh(written[0], process=False)
    assert len(loaded.vertices) == 53215 and len(loaded.faces) == 105840
    assert loaded.visual.uv.shape == (53215, 2)
    texture = ddfa.read_image(written[2])
    assert texture.shape == (128, 128, 3) and texture.max() > 0


def test_obj_without_image_and_writer_validation(tmp_path, photo_face):
    _, face = photo_face
    (path,) = face.save_obj(tmp_path / "plain.obj", texture=False)
    mesh = read_obj(path)
    assert mesh.colors is None and mesh.uv is None and len(mesh.triangles) == 76073
    with pytest.raises(InputError):
        write_obj(tmp_path / "bad.obj", np.zeros((3, 3)), [[0, 1, 2]], texture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError):
        write_ply(tmp_path / "bad.ply", np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(InputError):
        read_ply(path)  # an OBJ is not a PLY
