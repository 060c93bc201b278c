"""The learned regressor: a photo crop -> scene parameters in one pass, trained end to end through the render.

``RegressorSystem`` composes injected modules: an image encoder (``f2p.nets.ResNetEncoder``) under a
``ParamHead`` predicting every group of the face model's ``SceneSpec``, f2p's ``MeshRenderer`` for the explicit
mesh, and a neural refiner (``f2p.nets.UNetRefiner``) turning the render's buffers into the refined portrait. The
losses are fitting's (``FittingObjective``): landmark, photometric on the raw render and on the refined portrait,
identity on the refined portrait, priors and colour smoothness, plus an optional perceptual term and, on synthetic
data, a supervised parameter term. Gradients reach the encoder both directly (parameters) and through the
refiner's input buffers.

Checkpoints hold only trained weights: model data are non-persistent buffers, and the frozen identity and
perceptual networks are left out (``FROZEN_PREFIXES``) and taken from the live modules on load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from f2p.data import batch as keys
from f2p.data.batch import batch_observations
from f2p.errors import ModelFileError, one_line
from f2p.evaluation.parameters import recovery_errors, vertex_errors_mm
from f2p.fitting.schedule import FINAL_LR_FRACTION
from f2p.losses.priors import gaussian_prior
from f2p.morphable.base import MorphableModel
from f2p.morphable.registry import load_model
from f2p.nets.encoder import FaceRegressor
from f2p.perception.identity.embedder import create_embedder
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import SceneOutput, render_scene
from f2p.scene.objective import FittingObjective
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec
from f2p.torch_files import read_checkpoint

FROZEN_PREFIXES = ("objective.embedder.", "perceptual.")
"""State-dict keys of frozen networks, never written to checkpoints."""


@dataclass
class LossWeights:
    """Weights of the loss terms (0 switches a term off; all terms are means over the batch).

    Attributes:
        landmark: landmark reprojection (face-size normalised).
        photometric: raw render vs photo on the rendered face region.
        refined_photometric: refined portrait vs photo on the same pixels.
        refined_identity: dlib identity distance of the refined portrait (heavy on CPU).
        perceptual: VGG perceptual distance of the refined portrait (needs the system's ``perceptual`` module).
        prior: Gaussian priors of the model groups, pose, focal length and free colours.
        smoothness: smoothness of free per-vertex colours (models without albedo).
        params: supervised standardised parameter error (data with ground truth, i.e. synthetic).
        vertices: supervised mean distance in millimetres of the face-region vertices of the unposed predicted
            and true meshes (synthetic): weighs each shape direction by how much it moves the face, so that a
            direction the image barely shows is predicted near the mean rather than at random.
    """

    landmark: float = 1.0
    photometric: float = 1.0
    refined_photometric: float = 1.0
    refined_identity: float = 0.0
    perceptual: float = 0.0
    prior: float = 1e-3
    smoothness: float = 1.0
    params: float = 0.0
    vertices: float = 0.0


@dataclass(frozen=True)
class RegressorOutput:
    """What the regressor makes of a batch of crops.

    Attributes:
        params: {group: (B, K)} predicted scene parameters.
        scene: their render (``scene.render.image`` is the raw render).
        refined: (B, 3, S, S) refined portrait.
    """

    params: dict[str, Tensor]
    scene: SceneOutput
    refined: Tensor


def parameter_errors(spec: SceneSpec, params: dict[str, Tensor], truth: dict[str, Tensor],
                     scales: dict[str, Tensor]) -> dict[str, Tensor]:
    """Errors of predicted against true parameters, each (B,), under the names the regressor logs them by.

    ``f2p.evaluation.parameters.recovery_errors`` in the units of ``scales`` (the head's: prior standard
    deviations, or a slider's range): ``param_error``, the standardised RMSE over every component of the model's
    groups, and ``param_error_<group>`` per model group; ``param_error_shape`` and ``param_error_<group>_shape``
    (groups that move the face): the same weighed by each component's share of the face's shape variance;
    ``vertex_error_mm``: mean distance of face-region vertices of the unposed meshes, millimetres;
    ``pose_error_deg``: angle of the relative head rotation, degrees.
    """
    errors = recovery_errors(spec.model, params, truth, scales)
    return {"param_error": errors.rmse, **{f"param_error_{g}": value for g, value in errors.group_rmse.items()},
            "param_error_shape": errors.shape_rmse,
            **{f"param_error_{g}_shape": value for g, value in errors.group_shape_rmse.items()},
            "vertex_error_mm": errors.vertex_mm["none"].mean(1), "pose_error_deg": errors.pose_deg["geodesic"]}


class RegressorSystem(LightningModule):
    """Face-to-parameter regressor with a neural refiner, trained end to end (see module docstring).

    Args:
        encoder: image encoder, (B, 3, S, S) in [0, 1] -> (B, D), with a ``feature_dim`` attribute.
        refiner: render buffers -> refined portrait (``forward(render, photo) -> (B, 3, S, S)``).
        renderer: the mesh renderer (default ``MeshRenderer()``: PyTorch3D on GPU, torch on CPU).
        face_model: name or path for ``load_model`` (or a loaded model: ``systems.checkpoints``); must match the
            data's.
        image_size: side S of the crops the regressor takes; must match the data's.
        use_landmarks: feed the crops' landmarks to the parameter head (see ``FaceRegressor``).
        head_bottleneck: rank of the heads of large groups (per-vertex colour).
        weights: loss weights (default ``LossWeights()``).
        perceptual: perceptual loss module (``f2p.losses.perceptual.PerceptualLoss``), needed when
            ``weights.perceptual > 0``.
        init_weights: checkpoint whose weights start this run (e.g. synthetic pre-training before photos); it
            must have the same face model and networks, the image size may differ.
        lr: AdamW learning rate (cosine decay over the run).
        weight_decay: AdamW weight decay.
    """

    def __init__(self, encoder: nn.Module, refiner: nn.Module, renderer: MeshRenderer | None = None,
                 face_model: str | MorphableModel = "ict", image_size: int = 64, use_landmarks: bool = True, head_bottleneck: int = 64,
                 weights: LossWeights | None = None, perceptual: nn.Module | None = None,
                 init_weights: str | None = None, lr: float = 1e-3, weight_decay: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weights = weights or LossWeights()
        if self.weights.perceptual > 0 and perceptual is None:
            raise ValueError("weights.perceptual > 0 needs a perceptual module (f2p.losses.perceptual.PerceptualLoss)")
        self.face_model = face_model if isinstance(face_model, MorphableModel) else load_model(face_model)
        self.spec = SceneSpec(self.face_model, (image_size, image_size))
        self.regressor = FaceRegressor(encoder, self.spec, use_landmarks, head_bottleneck)
        self.refiner = refiner
        self.renderer = renderer or MeshRenderer()
        self.perceptual = perceptual
        embedder = create_embedder("dlib") if self.weights.refined_identity > 0 else None
        self.objective = FittingObjective(self.spec, embedder)
        self.lr = lr
        self.weight_decay = weight_decay
        self.register_state_dict_post_hook(_drop_frozen_keys)
        self.register_load_state_dict_post_hook(_allow_missing_frozen_keys)
        if init_weights is not None:
            state = read_checkpoint(init_weights, "a regressor checkpoint")["state_dict"]
            try:
                self.load_state_dict(state)
            except RuntimeError as error:
                raise ModelFileError(init_weights, f"holds networks that differ from this configuration's "
                                                   f"({one_line(error)})") from error

    @property
    def image_size(self) -> int:
        return self.spec.image_size[0]

    # ------------------------------------------------------------------ inference
    def forward(self, images: Tensor, landmarks: Tensor | None) -> RegressorOutput:
        """(B, 3, S, S) crops and (B, 68, 2) landmarks in their pixels -> parameters, render, refined portrait."""
        params = self.regressor(images, landmarks)
        scene = render_scene(self.spec, params, self.renderer)
        return RegressorOutput(params, scene, self.refiner(scene.render, images))

    @torch.no_grad()
    def predict_params(self, crops: Tensor, landmarks: Tensor | None = None) -> dict[str, Tensor]:
        """Parameters of aligned crops of any size (``f2p.perception.crop`` framing).

        The crops are resized to the regressor's size and the landmarks mapped with them; the parameters do not
        depend on the crop size (focal length and principal point scale with it), so they can start a fit at
        another size of the same framing.

        Args:
            crops: (B, 3, H, W) aligned crops in [0, 1].
            landmarks: (B, 68, 2) their landmarks in crop pixels, or None (regressors without ``use_landmarks``).

        Returns:
            {group: (B, K)} on the crops' device.
        """
        H, W = crops.shape[-2:]
        S = self.image_size
        device = self.spec.model.device
        images = F.interpolate(crops.to(device), size=(S, S), mode="bilinear", align_corners=False,
                               antialias=True)
        if landmarks is not None:
            landmarks = (landmarks.to(device) + 0.5) * torch.tensor([S / W, S / H], device=device) - 0.5
        was_training = self.training
        self.eval()
        params = self.regressor(images, landmarks)
        self.train(was_training)
        return {name: value.to(crops.device) for name, value in params.items()}

    # ------------------------------------------------------------------ losses
    def loss_terms(self, out: RegressorOutput, obs: Observations, truth: dict[str, Tensor] | None) -> dict[str, Tensor]:
        """{term: (B,)} for every term of ``LossWeights`` that applies (expensive ones only when weighted)."""
        w = self.weights
        groups = set(out.params)
        terms = self.objective.terms(out.params, out.scene, obs, {"landmark", "photometric", "prior", "smoothness"},
                                     groups)
        refined_scene = replace(out.scene, render=replace(out.scene.render, image=out.refined))
        wanted = {"photometric"} | ({"identity"} if w.refined_identity > 0 else set())
        terms.update({f"refined_{name}": value for name, value in
                      self.objective.terms(out.params, refined_scene, obs, wanted, groups).items()})
        if w.perceptual > 0:
            mask = out.scene.render.mask * obs.face_mask
            terms["perceptual"] = self.perceptual(out.refined, obs.image, mask)
        if truth is not None:
            scales = {name: self.regressor.head.scale(name) for name in truth}
            terms["params"] = sum(gaussian_prior(out.params[name] - value, scales[name])
                                  for name, value in truth.items())
            if w.vertices > 0:
                terms["vertices"] = vertex_errors_mm(self.spec.model, out.params, truth)["none"].mean(1)
        return terms

    def total_loss(self, terms: dict[str, Tensor]) -> Tensor:
        """Weighted sum of the batch means of ``terms`` (a scalar)."""
        weights = asdict(self.weights)
        return sum(weights[name] * value.mean() for name, value in terms.items() if weights.get(name, 0.0) > 0)

    def _photo_embedding(self, batch: dict) -> Tensor | None:
        """(B, D) identity embedding of the photos when the identity term needs one the batch does not carry."""
        if self.objective.embedder is None or keys.EMBEDDING in batch:
            return None
        with torch.no_grad():
            return self.objective.embedder.embed(batch[keys.IMAGE], batch[keys.LANDMARKS])

    def _step(self, batch: dict, stage: str) -> Tensor:
        obs = batch_observations(batch, self._photo_embedding(batch))
        out = self(obs.image, obs.landmarks)
        truth = batch.get(keys.PARAMS)
        terms = self.loss_terms(out, obs, truth)
        loss = self.total_loss(terms)
        B = obs.batch_size
        sync = stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=B, sync_dist=sync)
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.mean(), batch_size=B, sync_dist=sync)
        if truth is not None and stage != "train":
            with torch.no_grad():
                scales = {name: self.regressor.head.scale(name) for name in truth}
                prior = self.spec.initial(B, obs.landmarks)
                for prefix, guess in (("", out.params), ("prior_", prior)):
                    for name, value in parameter_errors(self.spec, guess, truth, scales).items():
                        self.log(f"{stage}/{prefix}{name}", value.mean(), batch_size=B, sync_dist=sync)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        """{group: (B, K)} parameters of the crops, written out by ``regressor_callbacks.PredictionWriter``."""
        return self.regressor(batch[keys.IMAGE], batch[keys.LANDMARKS])

    # ------------------------------------------------------------------ training set-up
    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule if self._trainer is not None else None
        for name, mine in (("image_size", self.image_size), ("face_model", self.hparams.face_model)):
            theirs = getattr(data, name, mine)
            if theirs != mine:
                raise ValueError(f"data {name} {theirs!r} differs from the regressor's {mine!r}; set both to the "
                                 "same value in the config")

    def configure_optimizers(self) -> dict:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total,
                                                              eta_min=self.lr * FINAL_LR_FRACTION)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _drop_frozen_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k[len(prefix):].startswith(FROZEN_PREFIXES)]:
        del state_dict[key]


def _allow_missing_frozen_keys(module: nn.Module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(FROZEN_PREFIXES)]
