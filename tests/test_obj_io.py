import numpy as np
import pytest

from f2p.morphable.base import ModelFileError
from f2p.morphable.obj_io import format_obj, read_obj


def test_quads_are_fan_triangulated_with_uvs(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n")
    mesh = read_obj(path)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert mesh.faces_uv.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_round_trip_with_colours(tmp_path):
    verts, faces, colors = np.random.rand(5, 3), np.array([[0, 1, 2], [2, 3, 4]]), np.random.rand(5, 3)
    path = tmp_path / "m.obj"
    path.write_text(format_obj(verts, faces, colors, header="test"))
    mesh = read_obj(path)
    assert np.allclose(mesh.verts, verts, atol=1e-6) and np.array_equal(mesh.faces, faces)
    assert np.allclose(mesh.colors, colors, atol=1e-4)


@pytest.mark.parametrize("content, message", [
    ("v 0 0 0\nf 1 2 3\n", "index 2 out of range"),
    ("v 0 zero 0\n", "line 1"),
    ("hello\n", "no vertices"),
])
def test_bad_obj_names_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.obj"
    path.write_text(content)
    with pytest.raises(ModelFileError, match=message) as info:
        read_obj(path)
    assert "bad.obj" in str(info.value)


def test_binary_file_is_reported(tmp_path):
    path = tmp_path / "blob.obj"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(ModelFileError, match="not a readable text OBJ"):
        read_obj(path)
