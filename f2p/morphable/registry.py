"""Finding and loading face models by name or by path: ``load_model("ict")``, ``load_model("my/model.npz")``.

Names (``ict``, ``sfm``, ``flame``, ``bfm``, ``procedural``) are looked up in each model root, in order:

1. the folders of ``F2P_MODEL_PATH`` (one folder, or several separated by ``os.pathsep``);
2. the user cache: ``F2P_CACHE_DIR``, else ``$XDG_CACHE_HOME/f2p``, else ``~/.cache/f2p``.

Inside a root each model has its folder (``ict_facekit/``, ``sfm_3448/``, ``flame/``, ``bfm/``) and a list
of file patterns, the first found wins (``ModelSource.files``). ``procedural`` needs no files.

A path is loaded by what it is: an ``.npz`` (f2p format, or the compact ICT FaceKit npz, told apart by
their arrays), a ``.pkl`` (FLAME), a ``.mat`` (BFM), or a folder: ICT ``FaceXModel`` OBJs
(``generic_neutral_mesh.obj``), eos SFM files (``sfm_shape_3448.bin``), an OBJ rig (``rig.json``), or a
folder holding one of the files above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from f2p.model_names import DEFAULT_MODEL, MODEL_NAMES, PROCEDURAL
from f2p.morphable import ict, npz, sfm
from f2p.morphable.base import LinearModelData, LinearMorphableModel, ModelFileError, MorphableModel
from f2p.morphable.download import OFFLINE_ENV, REMOTE_MODELS, download_lock, downloads_disabled, fetch_model
from f2p.morphable.procedural import procedural_data

MODEL_PATH_ENV = "F2P_MODEL_PATH"
CACHE_DIR_ENV = "F2P_CACHE_DIR"
RIG_MANIFEST = "rig.json"


class ModelNotFoundError(ModelFileError, FileNotFoundError):
    """A model name or path could not be found. The message says where f2p looked and how to get the model."""


@dataclass(frozen=True)
class ModelSource:
    """Where a named model lives inside a model root and how a user gets it.

    Attributes:
        name: registry name.
        folder: sub-folder of a model root.
        files: glob patterns inside ``folder``, preferred first; ``files[0]`` is the f2p ``.npz`` that
            ``load_model(name, download=True)`` writes into the cache.
        by_hand: how a user gets the files without f2p's download, a sentence ending with "into {folder}", which
            messages fill with where to put them (``destination``).
        license: the licence of the model data.
    """

    name: str
    folder: str
    files: tuple[str, ...]
    by_hand: str
    license: str


SOURCES = {source.name: source for source in (
    ModelSource(
        "ict", "ict_facekit",
        ("ict_facekit.npz", "ict_facekit_light_v1_skin*.npz", ict.NEUTRAL_OBJ, f"FaceXModel/{ict.NEUTRAL_OBJ}"),
        "copy the FaceXModel folder of https://github.com/ICT-VGL/ICT-FaceKit (or the compact "
        "ict_facekit_light_v1_skin14062.npz) into {folder}",
        "MIT (USC Institute for Creative Technologies)"),
    ModelSource(
        "sfm", "sfm_3448", ("sfm_3448.npz", sfm.SHAPE_FILE),
        f"copy {', '.join(sfm.FILES)} from share/ of https://github.com/patrikhuber/eos into {{folder}}",
        "Surrey Face Model data free for non-commercial use only (cvssp.org/facemodel); eos code Apache-2.0"),
    ModelSource(
        "flame", "flame", ("generic_model.pkl", "flame2023*.pkl"),
        "sign up at https://flame.is.tue.mpg.de, download FLAME 2020 (generic_model.pkl) or FLAME 2023 "
        "(flame2023.pkl) and put the .pkl into {folder}",
        "CC-BY-4.0 (FLAME, MPI for Intelligent Systems; download needs a sign-up)"),
    ModelSource(
        "bfm", "bfm", ("01_MorphableModel.mat", "BFM_model_front.mat"),
        "register at https://faces.dmi.unibas.ch/bfm/ to download the Basel Face Model 2009 "
        "(01_MorphableModel.mat; or the BFM_model_front.mat derived from it) and put it into {folder}",
        "Basel Face Model licence: registration required, no redistribution"),
)}
FOLDER_MARKERS = (ict.NEUTRAL_OBJ, sfm.SHAPE_FILE, RIG_MANIFEST)


def cache_dir() -> Path:
    """The user cache folder of f2p (not created)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "f2p"


def model_roots() -> list[Path]:
    """Model roots in search order: the folders of ``F2P_MODEL_PATH``, then the cache."""
    roots = [Path(p).expanduser() for p in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if p]
    return [*roots, cache_dir()]


def find_model(name: str) -> Path | None:
    """The file or folder to load for a model name, or None when no root has it."""
    source = SOURCES[name]
    for root in model_roots():
        match = _first_match(root / source.folder, source.files)
        if match is not None:
            return match
    return None


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, *, download: bool = False) -> MorphableModel:
    """Load a face model by registry name (``ict``, ``sfm``, ``flame``, ``bfm``, ``procedural``) or by path.

    Args:
        name_or_path: a name from ``MODEL_NAMES`` or a file/folder (see the module docstring).
        download: when a named open model (``ict``, ``sfm``) is not found, fetch it from its public
            repository and convert it into the cache first (unless ``F2P_OFFLINE`` forbids downloads: then the
            not-found message says so).

    Raises:
        ModelNotFoundError: nothing found; the message lists where f2p looked, how to get it and its licence.
        DownloadError: the download failed; the message says what to copy where by hand.
        ModelFileError: a file was found but is corrupt or inconsistent.
    """
    if isinstance(name_or_path, str) and name_or_path in MODEL_NAMES:
        return _load_named(name_or_path, download)
    return load_path(name_or_path)


def load_path(path: str | os.PathLike) -> MorphableModel:
    """Load a model file or folder by what it is (see the module docstring)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if not path.is_file():
        raise ModelNotFoundError(path, f"no such file or folder (model names are {', '.join(MODEL_NAMES)})")
    if path.suffix == ".npz":
        return LinearMorphableModel(_load_npz(path))
    if path.suffix == ".pkl":
        from f2p.morphable.flame import load_flame

        return load_flame(path)
    if path.suffix == ".mat":
        from f2p.morphable.bfm import load_bfm

        return LinearMorphableModel(load_bfm(path))
    if path.name in FOLDER_MARKERS:
        return _load_folder(path.parent)
    raise ModelFileError(path, "unsupported model file: expected an .npz (f2p or ICT FaceKit), a FLAME .pkl, "
                               "a BFM .mat or a model folder")


def _load_named(name: str, download: bool) -> MorphableModel:
    if name == PROCEDURAL:
        return LinearMorphableModel(procedural_data())
    return load_path(locate_model(name, download=download))


def locate_model(name: str, *, download: bool = False) -> Path:
    """The file or folder of the named model ``name`` (a ``SOURCES`` name), as ``find_model``; when no root has it
    and ``download`` is set, an open model (``ict``, ``sfm``) is fetched into the cache first, by one process at a
    time (``download_lock``: a process that waited finds the model the other fetched).

    Raises:
        ModelNotFoundError: nothing found (and nothing fetched: not an open model, no ``download``, or
            ``F2P_OFFLINE`` set); one line saying where f2p looked and what to copy where.
        DownloadError: the download failed; the message says what to copy where by hand.
    """
    found = find_model(name)
    fetch = download and name in REMOTE_MODELS
    if found is None and fetch and not downloads_disabled():
        source = SOURCES[name]
        hint = source.by_hand.format(folder=destination(source.folder))
        with download_lock(cache_dir()):
            found = find_model(name) or fetch_model(REMOTE_MODELS[name], cache_dir() / source.folder / source.files[0],
                                                    hint=hint)
    if found is None:
        raise ModelNotFoundError(name, _not_found_message(SOURCES[name], refused=fetch and downloads_disabled()))
    return found


def _load_npz(path: Path) -> LinearModelData:
    arrays = npz.read_npz(path)
    if npz.is_f2p_npz(arrays):
        return npz.data_from_arrays(arrays, path)
    if ict.is_compact_npz(arrays):
        return ict.ict_data_from_arrays(arrays, path)
    raise ModelFileError(path, f"neither an f2p model (no {npz.HEADER_KEY!r} array) nor the compact ICT FaceKit "
                               f"npz (arrays {sorted(ict.COMPACT_KEYS)}); found arrays {sorted(arrays)}")


def _load_folder(folder: Path) -> MorphableModel:
    if (folder / RIG_MANIFEST).is_file():
        from f2p.morphable.rig import load_rig

        return LinearMorphableModel(load_rig(folder))
    if (folder / ict.NEUTRAL_OBJ).is_file():
        return LinearMorphableModel(ict.load_ict_obj_folder(folder))
    if (folder / sfm.SHAPE_FILE).is_file():
        return LinearMorphableModel(sfm.load_sfm(folder))
    for source in SOURCES.values():
        match = _first_match(folder, source.files)
        if match is not None:
            return load_path(match)
    patterns = sorted({RIG_MANIFEST, *(p for s in SOURCES.values() for p in s.files)})
    raise ModelNotFoundError(folder, f"folder holds no model files (looked for {', '.join(patterns)})")


def _first_match(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    """The first existing match of ``patterns`` in ``folder``: a model file, or the folder of a folder format."""
    if not folder.is_dir():
        return None
    for pattern in patterns:
        matches = sorted(folder.glob(pattern))
        if matches:
            match = matches[0]
            return match.parent if match.name in FOLDER_MARKERS else match
    return None


def destination(folder: str) -> str:
    """Where a user puts files of a model root's ``folder`` by hand (for messages): that folder in the cache
    (where downloads go), or under a folder of ``F2P_MODEL_PATH``."""
    return f"{cache_dir() / folder}/ (or {folder}/ under a folder of {MODEL_PATH_ENV})"


def _not_found_message(source: ModelSource, refused: bool = False) -> str:
    """Where f2p looked and how to get the model; ``refused``: a download was asked for and ``F2P_OFFLINE`` is set."""
    roots = model_roots()
    where = ", ".join(str(root / source.folder) for root in roots)
    env_note = "" if os.environ.get(MODEL_PATH_ENV) else f" ({MODEL_PATH_ENV} is not set)"
    by_hand = source.by_hand.format(folder=destination(source.folder))
    if refused:
        how = f"Downloads are off ({OFFLINE_ENV} is set): {by_hand}, or unset {OFFLINE_ENV} to let f2p fetch it"
    elif source.name in REMOTE_MODELS:
        how = (f"Run `python -m f2p model {source.name} --download` (online) to fetch it into the cache, or "
               f"{by_hand}")
    else:
        how = by_hand[0].upper() + by_hand[1:]
    return (f"model not found. Looked for {', '.join(source.files)} in {where}{env_note}. {how}. "
            f"Licence: {source.license}.")
