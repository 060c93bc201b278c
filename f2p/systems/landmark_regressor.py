"""Training the landmark regressor (``nets.landmark_regressor.LandmarkRegressor``) on landmark-only synthetic faces
(``data.landmark_synthetic``): no rendering, so a CPU trains it on millions of faces in an hour.

Losses (weights in ``LandmarkLossWeights``): the supervised standardised parameter error (the head's scales: prior
standard deviations, a slider's range), the mean distance in millimetres of the 468 dense surface points of the
unposed predicted and true meshes (weighs each shape direction by how much it moves the face), and the
reprojection error of the 68 and 468 landmarks under the predicted camera against the exact (noise-free)
projections, in units of the face's landmark spread. Validation and test log the errors of
``systems.regressor.parameter_errors`` next to the prior's (the mean face placed over the landmarks).

Checkpoints hold only the network's weights and plain hyper-parameters (no class paths):
``systems.landmark_weights`` loads them, or the shipped state dict, weights-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from f2p.conventions import MM_PER_M
from f2p.data.batch import batch_observations
from f2p.data.landmark_synthetic import CONFIDENCE, DENSE, DENSE_CONFIDENCE, IMAGE, LANDMARKS, PARAMS
from f2p.evaluation.pose import geodesic_degrees
from f2p.fitting.schedule import FINAL_LR_FRACTION
from f2p.losses.priors import gaussian_prior
from f2p.morphable.correspondence import similarity_align
from f2p.morphable.dense import dense_landmarks
from f2p.morphable.registry import load_model
from f2p.nets.landmark_regressor import ImageEncoder, LandmarkRegressor
from f2p.perception.crop_size import CROP_SIZE
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import axis_angle_to_matrix
from f2p.scene.compose import render_scene
from f2p.scene.params import POSE, SceneSpec, landmark_frame
from f2p.systems.landmark_weights import SHIPPED, LandmarkPredictor, load_landmark_regressor, shipped_weights
from f2p.systems.regressor import parameter_errors


@dataclass
class LandmarkLossWeights:
    """Weights of the loss terms (0 switches a term off; all are batch means).

    Attributes:
        params: standardised parameter error of every predicted group.
        vertices: mean distance of the unposed dense surface points, millimetres.
        reprojection: mean distance of the projected 68 and 468 points from the exact ones, landmark spreads.
        aligned: mean distance of the unposed dense surface points after the least-squares similarity that takes
            the predicted ones onto the true ones (the benchmark's alignment; the similarity itself is not
            differentiated), millimetres.
        rotation: angle between the predicted and the true head rotation, degrees (the benchmark's rotation error,
            ``evaluation.pose.geodesic_degrees``: from the relative rotation's quaternion, finite gradient at 0).
    """

    params: float = 1.0
    vertices: float = 0.2
    reprojection: float = 20.0
    aligned: float = 0.0
    rotation: float = 0.0


class LandmarkRegressorSystem(LightningModule):
    """The landmark regressor and its training (module docstring).

    Args:
        face_model: registry name of the face model (must match the data's).
        image_size: side S of the crops whose pixels the landmarks are in (must match the data's).
        hidden: width of the network's MLP.
        depth: its hidden layers.
        blocks: its residual blocks after them (``nets.landmark_regressor.ResidualBlock``).
        refine: its refinement stages (``nets.landmark_regressor.RefinementStage``).
        refine_hidden: their width.
        weights: loss weights (default ``LandmarkLossWeights()``).
        lr: AdamW learning rate (cosine decay over the run).
        weight_decay: AdamW weight decay.
        init_weights: weights that start the network (``systems.landmark_weights``: a ``.pt`` with its ``.json``
            or a checkpoint, read weights-only; they must match ``hidden``, ``depth`` and ``blocks``; weights with
            fewer refinement stages (of the same width) start those and the network before them, the further stages
            starting as the identity; landmarks-only weights start a network with an ``image_encoder`` answering as
            they do, ``LandmarkRegressor.with_crop_columns``), or ``"shipped"`` for the package's weights of
            ``face_model`` (what ``predict`` on photos uses); None: random.
        image_encoder: the crop encoder of a network that reads the crops too (``nets.landmark_regressor``'s
            ``IMAGE_ENCODERS``; its data must render them: ``LandmarkFaceDataModule(images=...)``); None: landmarks
            only.
    """

    method = "landmark-regressor"
    """How parameters are found, for metrics.json (``regressor_callbacks.PredictionWriter``)."""

    def __init__(self, face_model: str = "ict", image_size: int = CROP_SIZE, hidden: int = 512, depth: int = 3,
                 weights: LandmarkLossWeights | None = None, lr: float = 2e-3, weight_decay: float = 1e-4,
                 init_weights: str | None = None, blocks: int = 0, refine: int = 0, refine_hidden: int = 384,
                 image_encoder: ImageEncoder | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weights = weights or LandmarkLossWeights()
        self.face_model = load_model(face_model)
        self.spec = SceneSpec(self.face_model, (image_size, image_size))
        self.network = LandmarkRegressor(self.spec, hidden, depth, blocks, refine, refine_hidden, image_encoder)
        self.renderer = MeshRenderer()  # exports of predict (the network itself renders nothing)
        self.lr, self.weight_decay = lr, weight_decay
        if init_weights is not None:
            path = shipped_weights(face_model) if init_weights == SHIPPED else Path(init_weights)
            loaded = load_landmark_regressor(path, expect=self.spec).network
            if loaded.refine > refine or (loaded.refine and loaded.refine_hidden != refine_hidden):
                raise ValueError(f"init_weights {path} have {loaded.refine} refinement stages of width "
                                 f"{loaded.refine_hidden}; this network has {refine} of width {refine_hidden}")
            state = loaded.state_dict()
            if loaded.image_encoder is None and image_encoder is not None:  # start as the landmarks-only network
                state = self.network.with_crop_columns(state)
            elif loaded.image_encoder != image_encoder:
                raise ValueError(f"init_weights {path} have image_encoder {loaded.image_encoder}; this network has "
                                 f"{image_encoder}")
            self.network.load_state_dict(state, strict=loaded.refine == refine and loaded.image_encoder == image_encoder)

    def forward(self, batch: dict) -> dict[str, Tensor]:
        """{group: (B, K)} of a landmark batch (keys of ``data.landmark_synthetic``)."""
        if self.network.crop_encoder is not None and IMAGE not in batch:
            raise ValueError(f"the landmark regressor reads crops (image_encoder {self.network.image_encoder!r}) "
                             "but the data gives none: set data.init_args.images (a SceneSampler)")
        return self.network(batch[LANDMARKS], batch[CONFIDENCE], batch.get(DENSE), batch.get(DENSE_CONFIDENCE),
                            batch.get(IMAGE))

    def loss_terms(self, params: dict[str, Tensor], truth: dict[str, Tensor]) -> dict[str, Tensor]:
        """{term: (B,)} of ``LandmarkLossWeights`` for predicted and true {group: (B, K)}."""
        head = self.network.head
        model = self.spec.model
        terms = {"params": sum(gaussian_prior(params[name] - truth[name], head.scale(name)) for name in head.heads)}
        shape = {name: params[name] for name in model.groups}
        true_shape = {name: truth[name] for name in model.groups}
        points, true_points = dense_landmarks(model, **shape), dense_landmarks(model, **true_shape)  # (B, 468, 3)
        terms["vertices"] = (points - true_points).norm(dim=-1).mean(1) * MM_PER_M
        if self.weights.aligned > 0:
            with torch.no_grad():
                s, R, t = similarity_align(points, true_points)  # (B,), (B, 3, 3), (B, 3)
            aligned = s[:, None, None] * points @ R.transpose(1, 2) + t[:, None]
            terms["aligned"] = (aligned - true_points).norm(dim=-1).mean(1) * MM_PER_M
        if self.weights.rotation > 0:
            terms["rotation"] = geodesic_degrees(axis_angle_to_matrix(params[POSE]), axis_angle_to_matrix(truth[POSE]))
        predicted = render_scene(self.spec, params, None, dense=True)
        with torch.no_grad():
            exact = render_scene(self.spec, truth, None, dense=True)
            _, spread = landmark_frame(exact.landmarks2d, model.landmark_confidence)  # (B,)
        distance = torch.cat([(predicted.landmarks2d - exact.landmarks2d).norm(dim=-1),
                              (predicted.dense2d - exact.dense2d).norm(dim=-1)], dim=1)  # (B, 68 + 468)
        terms["reprojection"] = distance.mean(1) / spread
        return terms

    def _step(self, batch: dict, stage: str) -> Tensor:
        params = self(batch)
        truth = batch[PARAMS]
        terms = self.loss_terms(params, truth)
        weights = asdict(self.weights)
        loss = sum(weights[name] * value.mean() for name, value in terms.items() if weights[name] > 0)
        B = batch[LANDMARKS].shape[0]
        sync = stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=B, sync_dist=sync)
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.mean(), batch_size=B, sync_dist=sync)
        if stage != "train":
            with torch.no_grad():
                scales = {name: self.network.head.scale(name) for name in self.spec.model.groups}
                prior = self.spec.initial(B, batch[LANDMARKS])
                for prefix, guess in (("", params), ("prior_", prior)):
                    for name, value in parameter_errors(self.spec, guess, truth, scales).items():
                        self.log(f"{stage}/{prefix}{name}", value.mean(), batch_size=B, sync_dist=sync)
        return loss

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        """{group: (B, K)} of a batch of photo crops (``data.faces``; dense points where the detector gave them),
        written out by ``regressor_callbacks.PredictionWriter``. Landmarks are mapped from the crops' size to the
        network's."""
        return LandmarkPredictor(self.network)(batch_observations(batch))

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule if self._trainer is not None else None
        for name, mine in (("image_size", self.spec.image_size[0]), ("face_model", self.hparams.face_model)):
            theirs = getattr(data, name, mine)
            if theirs != mine:
                raise ValueError(f"data {name} {theirs!r} differs from the landmark regressor's {mine!r}; set both "
                                 "to the same value in the config")

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total,
                                                              eta_min=self.lr * FINAL_LR_FRACTION)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
