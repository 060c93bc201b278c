"""Reading pickled model files (FLAME ``.pkl``, pickled ``.npy``) without running code from them.

A pickle can call any importable function while it loads, so ``pickle.load`` and
``np.load(allow_pickle=True)`` on a downloaded file run whatever the file says. The unpickler here
resolves only an allowlist of globals and refuses every other one with a ``ModelFileError``:

* numpy arrays, dtypes and scalars (``numpy.core.*`` of numpy 1 and ``numpy._core.*`` of numpy 2);
* scipy.sparse csc/csr/coo matrices and arrays (any ``scipy.sparse`` module path, old or new);
* builtin containers (list, tuple, dict, set, frozenset, bytes, bytearray, complex, object),
  ``collections.OrderedDict``, ``copyreg._reconstructor`` and ``_codecs.encode``, which Python 2
  and protocol 0-2 pickles use to rebuild the above;
* chumpy arrays (``chumpy.*``, stored in FLAME's ``generic_model.pkl``), mapped to a stand-in that
  keeps only their value ``x``, so chumpy need not be installed (an unevaluated chumpy expression,
  which has no ``x``, loads as None);
* torch tensors (``torch._utils._rebuild_tensor_v2``; DECA's ``landmark_embedding.npy`` holds some),
  whose storage bytes are read with ``torch.load(weights_only=True)``, torch's own restricted loader.

Chumpy stand-ins and tensors are converted to numpy arrays after loading, so callers get plain
numpy, scipy and builtin objects only. Python 2 pickles are read with ``encoding="latin1"``
(numpy's documented setting for them).
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import copyreg
import importlib
import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse
import torch

from f2p.morphable.base import ModelFileError

PICKLE_ENCODING = "latin1"
"""How Python 2 ``str`` objects are decoded; numpy's array data survives it byte for byte."""

_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric")
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
_BUILTIN_NAMES = ("list", "tuple", "dict", "set", "frozenset", "bytes", "bytearray", "complex", "object")


class _ChumpyArray:
    """Stand-in for a pickled ``chumpy.ch.Ch``: keeps the array ``x`` of its state, ignores the rest."""

    x: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # chumpy's __new__ arguments are ignored
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict state, slot state) of objects with __slots__
            state = state[0]
        if isinstance(state, dict):
            self.x = state.get("x")


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` on numpy 2, ``numpy.core.<submodule>`` on numpy 1."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


def _load_torch_storage(data: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``, which calls ``torch.load(weights_only=False)``."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_NUMPY_GLOBALS = {
    "ndarray": np.ndarray,
    "dtype": np.dtype,
    "_reconstruct": _numpy_core("multiarray")._reconstruct,
    "scalar": _numpy_core("multiarray").scalar,
    "_frombuffer": _numpy_core("numeric")._frombuffer,
}
"""Allowed under any module of ``_NUMPY_MODULES`` (pickles name them by the module of the numpy that wrote them)."""

_OTHER_GLOBALS = {
    **{("builtins", name): getattr(builtins, name) for name in _BUILTIN_NAMES},
    ("collections", "OrderedDict"): OrderedDict,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("_codecs", "encode"): codecs.encode,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_torch_storage,
}


def _allowed_global(module: str, name: str) -> Any | None:
    """The object a pickle may reference as ``module.name``, or None when it is not allowed."""
    if module in _NUMPY_MODULES:
        return _NUMPY_GLOBALS.get(name)
    if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_NAMES:
        return getattr(scipy.sparse, name)
    if module == "chumpy" or module.startswith("chumpy."):
        return _ChumpyArray
    return _OTHER_GLOBALS.get((module, name))


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of ``_allowed_global``."""

    def __init__(self, file: BinaryIO, source: Path) -> None:
        super().__init__(file, encoding=PICKLE_ENCODING)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__, copy_reg) -> Python 3, as the default find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        allowed = _allowed_global(module, name)
        if allowed is None:
            raise ModelFileError(
                self.source, f"refusing to load arbitrary code from this file: it references {module}.{name}, "
                             "which is not a numpy, scipy.sparse, builtin container or chumpy array type")
        return allowed


def _to_plain(obj: Any, source: Path) -> Any:
    """Replace chumpy stand-ins and torch tensors inside dicts, lists, tuples and object arrays by numpy arrays."""
    if isinstance(obj, _ChumpyArray):  # an unevaluated chumpy expression has no "x": None
        return None if obj.x is None else np.asarray(_to_plain(obj.x, source))
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return type(obj)((key, _to_plain(value, source)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_plain(value, source) for value in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        plain = np.empty(obj.shape, dtype=object)
        for index, value in np.ndenumerate(obj):
            plain[index] = _to_plain(value, source)
        return plain
    return obj


def _unpickle(stream: BinaryIO, source: Path) -> Any:
    try:
        return _to_plain(_RestrictedUnpickler(stream, source).load(), source)
    except ModelFileError:
        raise
    except Exception as error:  # any failure inside the unpickler means a corrupt or foreign file
        raise ModelFileError(source, f"not a readable pickle ({type(error).__name__}: {error})") from None


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle file (Python 2 or 3) that may only hold numpy/scipy/builtin/chumpy/tensor data.

    Raises:
        ModelFileError: the file is missing, corrupt, or references any other global (nothing from it runs).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found")
    with path.open("rb") as stream:
        return _unpickle(stream, path)


def safe_load_npy(path: str | os.PathLike) -> np.ndarray:
    """Load a ``.npy`` file; an object array (a pickled payload) goes through the restricted unpickler.

    Returns the array as stored: a pickled dict saved with ``np.save`` comes back as a 0-d object
    array (take ``result.item()``), with chumpy arrays and tensors inside converted to numpy.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found")
    with path.open("rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ModelFileError(path, f"unsupported .npy format version {version}")
            _, _, dtype = read_header(stream)
        except ValueError as error:
            raise ModelFileError(path, f"not a .npy file ({error})") from None
        if dtype.hasobject:
            array = _unpickle(stream, path)
            if not isinstance(array, np.ndarray):
                raise ModelFileError(path, f"the pickled payload is a {type(array).__name__}, not an array")
            return array
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ModelFileError(path, f"not a readable .npy file ({error})") from None
