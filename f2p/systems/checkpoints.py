"""Loading a trained regressor from a checkpoint without letting the file steer what runs or what is read.

A Lightning checkpoint of ``python -m f2p fit --config configs/regressor*.yaml`` holds plain data (read with
``weights_only=True``, so no pickled code runs) and, among its hyper-parameters, the networks as ``class_path``
entries and Lightning's ``_instantiator``: names of Python objects that ``load_from_checkpoint`` would import. Here
nothing a checkpoint names is imported: each network is built from f2p's own classes (``ALLOWED_NETWORKS``), with
only plain-typed arguments, and anything else is refused in one line. Arguments that name files (an encoder's
pretrained weights, a perceptual network, a face model file) are not followed: the trained weights come from the
checkpoint's state dict, and the face model is the caller's (``expect``) or a registry name.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from f2p.errors import ModelFileError, one_line
from f2p.morphable.registry import MODEL_NAMES
from f2p.nets.encoder import ResNetEncoder
from f2p.nets.refiner import UNetRefiner
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec
from f2p.systems.regressor import LossWeights, RegressorSystem
from f2p.torch_files import read_checkpoint

ALLOWED_NETWORKS: dict[str, dict[str, type[nn.Module]]] = {
    "encoder": {"f2p.nets.ResNetEncoder": ResNetEncoder, "f2p.nets.encoder.ResNetEncoder": ResNetEncoder},
    "refiner": {"f2p.nets.UNetRefiner": UNetRefiner, "f2p.nets.refiner.UNetRefiner": UNetRefiner},
    "renderer": {"f2p.render.MeshRenderer": MeshRenderer, "f2p.render.renderer.MeshRenderer": MeshRenderer},
}
"""The networks a regressor checkpoint may name, by the class paths f2p's configs use."""
FILE_ARGUMENTS = {"encoder": ("weights",)}
"""Network arguments that name files: not followed (the state dict holds the trained weights)."""
PLAIN_TYPES = (str, int, float, bool, type(None))
SCALARS = {"face_model": str, "image_size": int, "use_landmarks": bool, "head_bottleneck": int, "lr": float,
           "weight_decay": float}
"""The system's own arguments read from a checkpoint, with their types."""


def load_regressor(checkpoint_path: str | Path, map_location: str | torch.device = "cpu",
                   expect: SceneSpec | None = None) -> RegressorSystem:
    """A trained regressor from a checkpoint (see the module docstring), in eval mode, for prediction.

    Args:
        checkpoint_path: the checkpoint file.
        map_location: device of the loaded networks.
        expect: the scene the predictions are for (fitting's or an evaluation's): its face model is used, and the
            regressor must predict the same model with the same parameter groups. None: the checkpoint's face model
            must be a registry name (``ict``, ``sfm``, ...).

    Raises:
        ModelFileError: the file is missing, is not a checkpoint, names classes or arguments f2p does not allow,
            holds networks that differ from this version's, or predicts another face model than ``expect``'s
            (one line naming the file).
    """
    path = Path(checkpoint_path)
    content = read_checkpoint(path, "a regressor checkpoint", ("state_dict", "hyper_parameters"))
    arguments = allowed_arguments(path, content["hyper_parameters"])
    face_model = arguments.pop("face_model", None)
    if expect is not None:
        if face_model in MODEL_NAMES and face_model != expect.model.name:
            raise ModelFileError(path, f"the regressor predicts model {face_model!r}, but {expect.model.name!r} is "
                                       f"used here (pass --model {face_model})")
        face_model = expect.model
    elif face_model not in MODEL_NAMES:
        raise ModelFileError(path, f"the regressor's face model {face_model!r} is not a registry name "
                                   f"({', '.join(MODEL_NAMES)}); give the model it was trained with")
    networks = {}
    for role in ALLOWED_NETWORKS:
        entry = arguments.pop(role, None)
        if entry is None and role != "renderer":  # the renderer has a default
            raise ModelFileError(path, f"hyper-parameter {role!r} is not a network entry with a class_path")
        networks[role] = None if entry is None else _build(path, role, entry)
    weights = {**arguments.pop("weights", {}), "perceptual": 0.0, "refined_identity": 0.0}  # no part in predicting
    try:
        system = RegressorSystem(networks["encoder"], networks["refiner"], networks["renderer"], face_model=face_model,
                                 weights=LossWeights(**weights), **arguments)
        system.load_state_dict(content["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(path, f"not a regressor checkpoint this f2p version can load "
                                   f"({one_line(error)})") from error
    return system.to(map_location).eval()


def allowed_arguments(path: Path, hparams: dict) -> dict:
    """What f2p takes from a checkpoint's hyper-parameters (the one set of rules, also used by ``python -m f2p
    predict|test --ckpt_path``): the system's ``SCALARS`` (type-checked), the loss ``weights`` (numbers), and for
    each ``ALLOWED_NETWORKS`` role present, ``{"class_path", "init_args"}`` with plain arguments of that class and
    the ``FILE_ARGUMENTS`` left out. Nothing else (``_instantiator``, ``_class_path``) is read.

    Raises:
        ModelFileError: a wrongly typed value, or a network class outside the allow-list (one line).
    """
    arguments = {name: _scalar(path, hparams, name, kind) for name, kind in SCALARS.items() if name in hparams}
    weights = hparams.get("weights")
    if weights is not None:
        if not isinstance(weights, dict) or not all(isinstance(v, (int, float)) for v in weights.values()):
            raise ModelFileError(path, "hyper-parameter 'weights' is not a table of numbers")
        arguments["weights"] = weights
    for role in ALLOWED_NETWORKS:
        if hparams.get(role) is not None:
            arguments[role] = _network_entry(path, hparams[role], role)
    return arguments


def _scalar(path: Path, hparams: dict, name: str, kind: type) -> object:
    value = hparams[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelFileError(path, f"hyper-parameter {name!r} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _network_entry(path: Path, entry: object, role: str) -> dict:
    """The checkpoint's ``role`` network entry, checked against the allow-list, file arguments left out."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_path"), str):
        raise ModelFileError(path, f"hyper-parameter {role!r} is not a network entry with a class_path")
    cls = ALLOWED_NETWORKS[role].get(entry["class_path"])
    if cls is None:
        raise ModelFileError(path, f"{role} class {entry['class_path']!r} is not one of f2p's "
                                   f"({', '.join(sorted(ALLOWED_NETWORKS[role]))}); refusing to import it")
    init_args = entry.get("init_args") or {}
    accepted = set(inspect.signature(cls).parameters)
    if not isinstance(init_args, dict) or set(init_args) - accepted or not all(
            isinstance(value, PLAIN_TYPES) for value in init_args.values()):
        raise ModelFileError(path, f"{role} arguments {init_args!r} are not plain arguments of {cls.__name__}")
    return {"class_path": entry["class_path"],
            "init_args": {name: value for name, value in init_args.items() if name not in FILE_ARGUMENTS.get(role, ())}}


def _build(path: Path, role: str, entry: dict) -> nn.Module:
    """The network of an ``allowed_arguments`` entry, from f2p's own class."""
    try:
        return ALLOWED_NETWORKS[role][entry["class_path"]](**entry["init_args"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(path, f"{role} arguments {entry['init_args']!r}: {one_line(error)}") from error
