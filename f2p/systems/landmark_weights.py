"""The landmark regressor's weights: the ones shipped in ``f2p/weights/``, any ``python -m f2p fit --config
configs/landmark_regressor.yaml`` checkpoint, and the export from one to the other.

Shipped weights are two files: ``<model>_landmark_regressor.pt``, the network's state dict alone (read with
``torch.load(weights_only=True)``: tensors, no code), and ``<model>_landmark_regressor.json`` beside it, the plain
hyper-parameters (``HYPER_PARAMETERS``) that rebuild f2p's own ``LandmarkRegressor`` before the weights go in.
Nothing in either file names a class or a file to read; a tampered, truncated or wrong-shape file is refused in one
line (``ModelFileError``).

``load_initializer`` is what ``--init`` and ``--checkpoint`` take: landmark-regressor weights or an image
regressor's checkpoint (``systems.checkpoints.load_regressor``), as an ``Initializer`` of the observations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from f2p.errors import ModelFileError, one_line
from f2p.fitting.estimate import Initializer
from f2p.morphable.registry import MODEL_NAMES, load_model
from f2p.nets.landmark_regressor import IMAGE_ENCODERS, LandmarkRegressor
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec
from f2p.torch_files import read_weights_only

if TYPE_CHECKING:
    from f2p.systems.regressor import RegressorSystem

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
"""The package folder of shipped weights."""
SHIPPED_SUFFIX = "_landmark_regressor.pt"
SHIPPED = "shipped"
"""The name that stands for ``shipped_weights(model)`` in configs (``LandmarkRegressorSystem.init_weights``)."""
HYPER_PARAMETERS = {"face_model": str, "image_size": int, "hidden": int, "depth": int}
"""What the JSON beside a state dict (and a checkpoint's hyper-parameters) must give, with their types."""
OPTIONAL_HYPER_PARAMETERS = {"blocks": 0, "refine": 0, "refine_hidden": 384}
"""What it may give, with the value of files without it (``blocks``, ``refine``, ``refine_hidden``: the residual
blocks and the refinement stages of ``LandmarkRegressor``; weights from before them have none)."""
IMAGE_ENCODER = "image_encoder"
"""The hyper-parameter naming the network's crop encoder: one of ``IMAGE_ENCODERS``, or absent / null for a
landmarks-only network (every shipped one)."""
NETWORK_PREFIX = "network."
"""State-dict prefix of the network inside a ``LandmarkRegressorSystem`` checkpoint."""


def shipped_weights(model_name: str) -> Path:
    """The shipped weights of face model ``model_name`` (``f2p/weights/<name>_landmark_regressor.pt``)."""
    return WEIGHTS_DIR / f"{model_name}{SHIPPED_SUFFIX}"


class LandmarkPredictor:
    """A loaded landmark regressor as an estimator's initialiser: ``Observations`` -> {group: (B, K)}.

    Landmarks of crops of any size are mapped to the network's crop size (pixel-centre rule); the parameters do not
    depend on the crop size, so they hold for the observations' scene.

    Args:
        network: the regressor (its ``spec`` gives the crop size it was trained at).
    """

    def __init__(self, network: LandmarkRegressor) -> None:
        self.network = network.eval()

    @torch.no_grad()
    def __call__(self, obs: Observations) -> dict[str, Tensor]:
        H, W = obs.image_size
        S = self.network.spec.image_size[0]
        device = self.network.spec.model.device
        scale = torch.tensor([S / W, S / H], device=device)

        def to_network(points: Tensor | None) -> Tensor | None:
            return None if points is None else (points.to(device) + 0.5) * scale - 0.5

        dense_confidence = None if obs.dense_confidence is None else obs.dense_confidence.to(device)
        image = None
        if self.network.crop_encoder is not None:  # the crops at the network's size (their pixels scale as above)
            image = obs.image.to(device)
            if (H, W) != (S, S):
                image = torch.nn.functional.interpolate(image, size=(S, S), mode="bilinear", antialias=True,
                                                        align_corners=False)
        params = self.network(to_network(obs.landmarks), obs.confidence.to(device), to_network(obs.dense),
                              dense_confidence, image)
        return {name: value.to(obs.image.device) for name, value in params.items()}


def is_landmark_weights(path: Path) -> bool:
    """Whether ``path`` holds landmark-regressor weights: a state dict with its JSON beside it, or a checkpoint of
    ``LandmarkRegressorSystem`` (hyper-parameters ``hidden`` and ``depth``, no image ``encoder``)."""
    path = Path(path)
    if path.with_suffix(".json").is_file() and path.suffix == ".pt":
        return True
    try:
        content = read_weights_only(path, "a weights file")
    except ModelFileError:
        return False  # not ours; the image regressor's loader reports what is wrong with it
    hparams = content.get("hyper_parameters") if isinstance(content, dict) else None
    return isinstance(hparams, dict) and "hidden" in hparams and "depth" in hparams and "encoder" not in hparams


def load_landmark_regressor(path: str | Path, map_location: str | torch.device = "cpu",
                            expect: SceneSpec | None = None) -> LandmarkPredictor:
    """A landmark regressor from shipped weights (``.pt`` + ``.json``) or a training checkpoint (``.ckpt``).

    Args:
        path: the file.
        map_location: device of the network.
        expect: the scene the predictions are for: its face model is used and must be the network's.

    Raises:
        ModelFileError: missing, unreadable or tampered file, hyper-parameters of the wrong type, weights of another
            shape or another face model (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such landmark-regressor weights file")
    content = read_weights_only(path, "a weights file")
    if path.suffix == ".pt" and path.with_suffix(".json").is_file():
        try:
            hparams = json.loads(path.with_suffix(".json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelFileError(path.with_suffix(".json"), f"not readable JSON ({one_line(error)})") from error
        state = content
    elif isinstance(content, dict) and isinstance(content.get("hyper_parameters"), dict):
        hparams = content["hyper_parameters"]
        state = {key[len(NETWORK_PREFIX):]: value for key, value in (content.get("state_dict") or {}).items()
                 if key.startswith(NETWORK_PREFIX)}
    else:
        raise ModelFileError(path, "neither a landmark-regressor state dict with its .json beside it nor a "
                                   "checkpoint of python -m f2p fit --config configs/landmark_regressor.yaml")
    arguments = _hyper_parameters(path, hparams)
    if expect is not None and arguments["face_model"] != expect.model.name:
        raise ModelFileError(path, f"the landmark regressor predicts model {arguments['face_model']!r}, but "
                                   f"{expect.model.name!r} is used here (pass --model {arguments['face_model']})")
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFileError(path, "holds no tensors of a landmark regressor")
    model = expect.model if expect is not None else load_model(arguments["face_model"])
    spec = SceneSpec(model, (arguments["image_size"], arguments["image_size"]))
    network = LandmarkRegressor(spec, arguments["hidden"], arguments["depth"], arguments["blocks"],
                                arguments["refine"], arguments["refine_hidden"], arguments[IMAGE_ENCODER])
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise ModelFileError(path, f"not the weights of f2p's landmark regressor with {arguments} "
                                   f"({one_line(error)})") from error
    return LandmarkPredictor(network.to(map_location))


def load_initializer(path: str | Path, map_location: str | torch.device = "cpu",
                     expect: SceneSpec | None = None) -> Initializer:
    """Observations -> parameters from landmark-regressor weights or an image regressor's checkpoint.

    Raises:
        ModelFileError: the file is neither (one line naming it; see the two loaders).
    """
    if not Path(path).is_file():
        raise ModelFileError(path, "no such weights file (shipped weights exist for: "
                                   f"{', '.join(sorted(p.name[:-len(SHIPPED_SUFFIX)] for p in WEIGHTS_DIR.glob('*' + SHIPPED_SUFFIX)))})")
    if is_landmark_weights(Path(path)):
        return load_landmark_regressor(path, map_location, expect)
    from f2p.systems.checkpoints import load_regressor  # Lightning and torchvision (3.5 s) only for image regressors

    return regressor_initializer(load_regressor(path, map_location, expect))


def regressor_initializer(regressor: RegressorSystem) -> Initializer:
    """An image regressor's ``predict_params`` as an ``Initializer`` (it reads the crops and their 68 landmarks)."""
    return lambda obs: regressor.predict_params(obs.image, obs.landmarks)


def export_weights(checkpoint: str | Path, out: str | Path, half: bool = False) -> tuple[Path, Path]:
    """Write a training checkpoint's network as shipped weights: ``out`` (state dict) and ``out`` with ``.json``.

    Args:
        checkpoint: the training checkpoint (or weights) to export.
        out: the state dict's path.
        half: store floating-point tensors as float16 (half the file; loading casts them back to the network's
            float32, ``load_state_dict``), for networks whose float32 file would pass the 10 MB a shipped file may
            have.

    Returns:
        The two paths written.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    predictor = load_landmark_regressor(checkpoint)
    hparams = _hyper_parameters(checkpoint, read_weights_only(checkpoint, "a weights file")["hyper_parameters"])
    out.parent.mkdir(parents=True, exist_ok=True)
    state = predictor.network.state_dict()
    if half:
        state = {name: value.half() if value.is_floating_point() else value for name, value in state.items()}
    torch.save(state, out)
    hparams = {name: value for name, value in hparams.items() if value is not None}  # no crop encoder: no entry
    out.with_suffix(".json").write_text(json.dumps(hparams, indent=2) + "\n")
    return out, out.with_suffix(".json")


def _hyper_parameters(path: Path, hparams: object) -> dict:
    """``HYPER_PARAMETERS`` and ``OPTIONAL_HYPER_PARAMETERS`` of ``hparams``, type-checked; a face model only by
    registry name."""
    if not isinstance(hparams, dict):
        raise ModelFileError(path, "hyper-parameters are not a table")
    arguments = {}
    for name, kind in HYPER_PARAMETERS.items():
        value = hparams.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelFileError(path, f"hyper-parameter {name!r} is {type(value).__name__}, expected {kind.__name__}")
        arguments[name] = value
    for name, default in OPTIONAL_HYPER_PARAMETERS.items():
        value = hparams.get(name, default)
        if not isinstance(value, type(default)) or isinstance(value, bool) or value < 0:
            raise ModelFileError(path, f"hyper-parameter {name!r} is {value!r}, expected a {type(default).__name__} "
                                       ">= 0")
        arguments[name] = value
    arguments[IMAGE_ENCODER] = hparams.get(IMAGE_ENCODER)
    if arguments[IMAGE_ENCODER] is not None and arguments[IMAGE_ENCODER] not in IMAGE_ENCODERS:
        raise ModelFileError(path, f"hyper-parameter {IMAGE_ENCODER!r} is {arguments[IMAGE_ENCODER]!r}, expected "
                                   f"one of {IMAGE_ENCODERS} or null")
    if arguments["face_model"] not in MODEL_NAMES:
        raise ModelFileError(path, f"face model {arguments['face_model']!r} is not a registry name "
                                   f"({', '.join(MODEL_NAMES)})")
    return arguments

