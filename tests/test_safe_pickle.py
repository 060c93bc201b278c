import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from f2p.morphable.base import ModelFileError
from f2p.morphable.safe_pickle import safe_load_npy, safe_load_pickle


class _RunsShell:
    """Unpickling this runs a shell command (the classic malicious pickle)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _py2_string(value: bytes) -> bytes:
    return b"U" + bytes([len(value)]) + value  # SHORT_BINSTRING: a Python 2 str


def _py2_array(array: np.ndarray) -> bytes:
    """Opcodes Python 2.7 with numpy 1.x writes for a 1-D little-endian array at protocol 2."""
    raw = array.tobytes()
    dtype_state = b"(K\x03" + _py2_string(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_string(b"b") + b"\x87R"
            + b"(K\x01K" + bytes([len(array)]) + b"\x85cnumpy\ndtype\n" + _py2_string(array.dtype.str[1:].encode())
            + b"K\x00K\x01\x87R" + dtype_state + b"\x89T" + len(raw).to_bytes(4, "little") + raw + b"tb")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_scipy_and_builtin_data_round_trip(tmp_path, protocol):
    dense = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = {"dense": dense, "csc": scipy.sparse.csc_matrix(dense), "csr": scipy.sparse.csr_matrix(dense),
            "coo": scipy.sparse.coo_matrix(dense), "scalar": np.float64(2.5), "ints": np.array([1, 2], np.uint32),
            "nested": [(1, "a"), {3, 4}, frozenset({5})], "text": "x", "blob": b"\x00\xff"}
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = safe_load_pickle(path)
    assert loaded["dense"].dtype == np.float32 and np.array_equal(loaded["dense"], dense)
    for key in ("csc", "csr", "coo"):
        assert type(loaded[key]) is type(data[key])
        assert np.array_equal(loaded[key].toarray(), dense)
    assert loaded["scalar"] == 2.5 and loaded["ints"].dtype == np.uint32
    assert loaded["nested"] == data["nested"] and loaded["text"] == "x" and loaded["blob"] == b"\x00\xff"


def test_python2_pickle_with_numpy1_names_loads(tmp_path):
    # {'a': np.arange(3.0), 's': set([7])} as Python 2.7 / numpy 1 writes it (str opcodes, __builtin__).
    payload = (b"\x80\x02}(" + _py2_string(b"a") + _py2_array(np.arange(3.0)) + _py2_string(b"s")
               + b"c__builtin__\nset\n]K\x07a\x85Ru.")
    path = tmp_path / "py2.pkl"
    path.write_bytes(payload)
    loaded = safe_load_pickle(path)
    assert np.array_equal(loaded["a"], [0.0, 1.0, 2.0]) and loaded["s"] == {7}


def test_old_scipy_module_path_loads(tmp_path):
    # Pickles from scipy < 1.8 name the class scipy.sparse.csc.csc_matrix.
    payload = pickle.dumps(scipy.sparse.csc_matrix(np.eye(3)), protocol=2)
    payload = payload.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")
    assert b"scipy.sparse.csc\ncsc_matrix" in payload
    path = tmp_path / "old.pkl"
    path.write_bytes(payload)
    assert np.array_equal(safe_load_pickle(path).toarray(), np.eye(3))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_running_code_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"v_template": np.zeros(3), "evil": _RunsShell(f"touch '{marker}'")}, protocol=protocol)
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError, match="refusing to load arbitrary code") as info:
        safe_load_pickle(path)
    assert str(path) in str(info.value) and f"{os.system.__module__}.system" in str(info.value)
    assert not marker.exists()
    pickle.loads(payload)  # control: the payload really is malicious
    assert marker.exists()


def test_builtin_eval_and_getattr_are_refused(tmp_path):
    for payload in (b"c__builtin__\neval\n(S'1+1'\ntR.", b"cbuiltins\ngetattr\n(S'x'\nS'upper'\ntR."):
        path = tmp_path / "evil.pkl"
        path.write_bytes(payload)
        with pytest.raises(ModelFileError, match="refusing"):
            safe_load_pickle(path)


def test_fake_chumpy_array_loads_as_numpy_without_chumpy(tmp_path):
    class Ch:  # mimics chumpy.ch.Ch: the value lives in the instance dict under "x"
        def __init__(self, x):
            self.x = x
            self._dirty_vars = {"x"}
            self._make_dense = False

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch, package.ch = Ch, module
    value = np.arange(24.0).reshape(2, 3, 4)
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        expression = Ch(None)
        del expression.x  # an unevaluated chumpy expression stores no value
        payload = pickle.dumps({"shapedirs": Ch(value), "list": [Ch(np.ones(2))], "sum": expression}, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    path = tmp_path / "chumpy.pkl"
    path.write_bytes(payload)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(payload)  # control: plain pickle needs chumpy
    loaded = safe_load_pickle(path)
    assert type(loaded["shapedirs"]) is np.ndarray and np.array_equal(loaded["shapedirs"], value)
    assert np.array_equal(loaded["list"][0], np.ones(2)) and loaded["sum"] is None


def test_object_npy_with_numpy_and_torch_values(tmp_path):
    path = tmp_path / "embedding.npy"
    np.save(path, {"faces": np.arange(5), "bary": torch.full((2, 3), 0.5)}, allow_pickle=True)
    loaded = safe_load_npy(path)
    assert loaded.shape == () and loaded.dtype == object
    content = loaded.item()
    assert np.array_equal(content["faces"], np.arange(5))
    assert isinstance(content["bary"], np.ndarray) and np.array_equal(content["bary"], np.full((2, 3), 0.5, np.float32))


def test_numeric_npy_and_refused_object_npy(tmp_path):
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(6).reshape(2, 3))
    assert np.array_equal(safe_load_npy(plain), np.arange(6).reshape(2, 3))
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([_RunsShell(f"touch '{marker}'")], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError, match="refusing"):
        safe_load_npy(evil)
    assert not marker.exists()


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        safe_load_pickle(tmp_path / "absent.pkl")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps({"a": np.arange(100)}, protocol=2)[:50])
    with pytest.raises(ModelFileError, match="not a readable pickle"):
        safe_load_pickle(truncated)
    not_npy = tmp_path / "text.npy"
    not_npy.write_text("hello")
    with pytest.raises(ModelFileError, match="not a .npy file"):
        safe_load_npy(not_npy)
