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


def reference_obj(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray | None, header: str) -> str:
    """format_obj's text written line by line with f-strings (its format before it formatted all lines at once)."""
    lines = [f"# {line}" for line in header.splitlines()]
    if colors is None:
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    else:
        lines += [f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}" for (x, y, z), (r, g, b) in zip(verts, colors)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("with_colors", [True, False])
def test_formatted_text_equals_line_by_line_formatting(with_colors):
    rng = np.random.default_rng(0)
    verts = (rng.normal(size=(200, 3)) * [0.1, 0.1, 10.0]).astype(np.float32)  # float32 as the exporter has them
    verts[0] = [-0.0, -1e-9, 5e-7]  # signed zeros and values that round to zero or to the last digit
    colors = rng.random((200, 3)) if with_colors else None
    faces = rng.integers(0, 200, size=(300, 3))
    text = format_obj(verts, faces, colors, header="f2p mesh\nmodel x")
    assert text == reference_obj(verts, faces, colors, "f2p mesh\nmodel x")
    assert text.startswith("# f2p mesh\n# model x\nv -0.000000 -0.000000 0.000000")  # float32 5e-7 is below it
