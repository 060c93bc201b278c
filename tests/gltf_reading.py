"""Reading f2p's head.glb back with pygltflib, independently of f2p's writer (test helper)."""

from __future__ import annotations

import numpy as np
import pygltflib

COMPONENTS = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32, pygltflib.UNSIGNED_SHORT: np.uint16}
WIDTHS = {pygltflib.SCALAR: 1, pygltflib.VEC2: 2, pygltflib.VEC3: 3, pygltflib.VEC4: 4, pygltflib.MAT4: 16}


def read_glb(data: bytes) -> dict:
    """Decode the head's glTF with pygltflib: arrays of the one primitive, its targets, weights, names, rotation
    (sparse accessors read as the spec says: zeros, or the view's values, with the listed rows replaced), and
    ``array``, which reads any accessor by index. A skinned head has more nodes than the head node (node 0)."""
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob()

    def view_values(view_index: int, offset: int, component: int, count: int) -> np.ndarray:
        view = gltf.bufferViews[view_index]
        assert view.byteStride is None
        return np.frombuffer(blob, COMPONENTS[component], count, view.byteOffset + offset)

    def array(index: int) -> np.ndarray:
        accessor = gltf.accessors[index]
        width = WIDTHS[accessor.type]
        values = np.zeros((accessor.count, width), COMPONENTS[accessor.componentType])
        if accessor.bufferView is not None:
            values[:] = view_values(accessor.bufferView, accessor.byteOffset, accessor.componentType,
                                    accessor.count * width).reshape(accessor.count, width)
        if accessor.sparse is not None:
            sparse = accessor.sparse
            rows = view_values(sparse.indices.bufferView, sparse.indices.byteOffset, sparse.indices.componentType,
                               sparse.count)
            values[rows] = view_values(sparse.values.bufferView, sparse.values.byteOffset, accessor.componentType,
                                       sparse.count * width).reshape(sparse.count, width)
        values = values.astype(np.float64)
        if accessor.min:  # the bounds glTF requires of POSITION are those of what readers get
            np.testing.assert_allclose(values.min(0), accessor.min, atol=1e-7)
            np.testing.assert_allclose(values.max(0), accessor.max, atol=1e-7)
        return values.squeeze(-1) if width == 1 else values

    (mesh,), node = gltf.meshes, gltf.nodes[0]
    assert node.mesh == 0 and (len(gltf.nodes) == 1 or node.skin is not None)
    (primitive,) = mesh.primitives
    attributes = primitive.attributes
    optional = {name: None if getattr(attributes, name) is None else array(getattr(attributes, name))
                for name in ("TEXCOORD_0", "COLOR_0")}
    return {
        "gltf": gltf, "array": array, "base": array(attributes.POSITION), "normals": array(attributes.NORMAL),
        "faces": array(primitive.indices).astype(np.int64).reshape(-1, 3), "uv": optional["TEXCOORD_0"],
        "colors": optional["COLOR_0"], "targets": np.stack([array(t["POSITION"]) for t in primitive.targets or []]),
        "weights": np.asarray(mesh.weights), "names": tuple(mesh.extras["targetNames"]),
        "scales": np.asarray(mesh.extras["f2p"]["targetScales"]), "rotation": node.rotation,
    }
