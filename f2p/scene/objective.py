"""The fitting objective: per-photo loss terms from a rendered scene and the observations."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from f2p import conventions as C
from f2p.losses import bound_penalty, gaussian_prior, identity_loss, landmark_loss, photometric_loss
from f2p.losses.landmark import face_size, robust_landmark_loss
from f2p.losses.priors import SliderPairs, slider_pair_prior, slider_pairs
from f2p.losses.smoothness import mesh_edges, vertex_color_smoothness
from f2p.morphable.base import MorphableModel
from f2p.morphable.contour import ContourCandidates, candidate_points, choose_silhouette, contour_candidates
from f2p.morphable.correspondence import dense_correspondence
from f2p.perception.identity.base import FaceEmbedder
from f2p.render.cameras import PinholeCamera
from f2p.render.rotations import axis_angle_to_matrix
from f2p.scene.compose import SceneOutput
from f2p.scene.observations import Observations
from f2p.scene.params import POSE, VERTEX_COLOR, SceneSpec

DENSE_CONTOUR_WEIGHT = 0.3
"""Weight of the dense face-oval points (``DenseCorrespondence.contour``): on a turned head the detected oval is
the silhouette, which slides over the surface, so their fixed surface points are right only near frontal."""
DENSE_SIGMA = 0.05
"""Robust scale of the dense term in face sizes: a dense point further off than this pulls no harder."""
JAW_FADE = 0.35
"""How fast the far-side jaw landmarks lose weight as the face turns: weight = clamp(n_z / JAW_FADE, 0, 1)
where n_z is the camera-facing component of the jaw side's direction."""
_RIGHT_JAW, _LEFT_JAW = slice(C.JAW[0], C.JAW[8]), slice(C.JAW[9], C.JAW[-1] + 1)
"""``C.JAW``'s sides without the chin point (iBUG's jaw is the contiguous 0-16: slices, no index tensor per call)."""


def jaw_weights(pose: Tensor) -> Tensor:
    """(B, 3) axis-angle head pose -> (B, 68) landmark weights that fade the jaw side turning away.

    The jaw contour of a turned head is a silhouette in 2D annotations but fixed vertices on the model;
    the side facing away from the camera therefore gets a weight that falls to zero as it turns away.
    Weights carry no gradient.
    """
    B = pose.shape[0]
    with torch.no_grad():
        R = axis_angle_to_matrix(pose)  # (B, 3, 3) model space
        side_normals = pose.new_tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]) / 2**0.5  # right, left cheek
        facing = torch.einsum("bij,sj->bsi", R, side_normals)[..., 2]  # (B, 2) towards the viewer (+z)
        fade = (facing / JAW_FADE).clamp(0.0, 1.0)
        weights = pose.new_ones(B, C.NUM_LANDMARKS)
        weights[:, _RIGHT_JAW] = fade[:, :1]
        weights[:, _LEFT_JAW] = fade[:, 1:]
    return weights



def landmark_weights(model: MorphableModel, confidence: Tensor, pose: Tensor,
                     contour: ContourCandidates | None = None) -> Tensor:
    """(B, 68) weights of the 68-point term: the detector's (B, 68) ``confidence`` x the model's landmark confidence
    x ``jaw_weights`` of the (B, 3) head ``pose`` (the jaw side turning away fades), except for the jaw points that
    slide along the silhouette (``contour``'s landmarks, when given), which are seen at any pose."""
    fade = jaw_weights(pose)
    if contour is not None:
        fade[:, contour.landmarks] = 1.0
    return confidence * model.landmark_confidence * fade


def slide_contour(model: MorphableModel, contour: ContourCandidates, params: dict[str, Tensor],
                  camera: PinholeCamera, landmarks2d: Tensor, dense2d: Tensor | None,
                  verts: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """The projected (B, 68, 2) landmarks and (B, 468, 2) dense points (or None) with the sliding outline points
    moved to the candidate on the current silhouette (``morphable.contour``); differentiable in the candidates'
    positions, the choice itself carries no gradient.

    Args:
        model: the face model; contour: its ``contour_candidates``.
        params: {group: (B, K)} scene parameters (the model's groups are used).
        camera: the scene's camera; landmarks2d, dense2d: the fixed points' projections.
        verts: (B, V, 3) the mesh when it is built already, else None (built from ``params`` only where needed).
    """
    model_params = {g: params[g] for g in model.groups if g in params}
    points = candidate_points(model, contour, verts, **model_params)  # (B, N, C, 3)
    B, N, Cc, _ = points.shape
    projected = camera.project(points.reshape(B, N * Cc, 3)).reshape(B, N, Cc, 2)
    choice = choose_silhouette(projected, camera.R, contour)  # (B, N)
    chosen = torch.gather(projected, 2, choice[:, :, None, None].expand(B, N, 1, 2))[:, :, 0]  # (B, N, 2)
    n68 = len(contour.landmarks)
    landmarks2d = landmarks2d.index_copy(1, contour.landmarks, chosen[:, :n68])
    if dense2d is not None and len(contour.dense):
        dense2d = dense2d.index_copy(1, contour.dense, chosen[:, n68:])
    return landmarks2d, dense2d


def dense_point_weights(model: MorphableModel) -> Tensor:
    """(468,) per-point weights of the dense term on the model's device: ``DENSE_CONTOUR_WEIGHT`` on the face oval
    (``DenseCorrespondence.contour``), 1 elsewhere."""
    contour = dense_correspondence(model).contour.to(model.device)
    return torch.where(contour, DENSE_CONTOUR_WEIGHT, 1.0)


def model_slider_pairs(model: MorphableModel) -> dict[str, SliderPairs]:
    """{group: its ``slider_pairs``} for the model's named groups that have mirror or opposing pairs (the
    ``symmetry`` term's)."""
    pairs = {name: slider_pairs(group.component_names) for name, group in model.groups.items()
             if group.component_names is not None}
    return {name: p for name, p in pairs.items() if p.count}


class FittingObjective(nn.Module):
    """Computes every loss term per photo. Holds the identity embedder (frozen) when one is used.

    Args:
        spec: the scene specification.
        embedder: identity network for the identity term, or None.
        sliding_contour: match the outline points of the landmark and dense terms to the model's current
            silhouette (``slide_contour``) instead of their fixed vertices: for detectors that mark the visible
            outline of a turned face.
    """

    def __init__(self, spec: SceneSpec, embedder: FaceEmbedder | None = None, sliding_contour: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.embedder = embedder
        self.contour = contour_candidates(spec.model) if sliding_contour else None
        self.slider_pairs = model_slider_pairs(spec.model)
        self.register_buffer("edges", mesh_edges(spec.model.faces), persistent=False)
        for name, std in spec.prior_stds().items():  # buffers move with .to() (systems are built on the CPU)
            self.register_buffer(f"prior_std_{name}", std, persistent=False)

    def terms(self, params: dict[str, Tensor], scene: SceneOutput, obs: Observations, wanted: set[str],
              trainable: set[str]) -> dict[str, Tensor]:
        """{term: (B,) loss} for the terms in ``wanted``; priors and bounds cover the ``trainable`` groups only
        (the others are constants in the stage)."""
        B = obs.batch_size
        out: dict[str, Tensor] = {}
        landmarks2d, dense2d = (scene.landmarks2d, scene.dense2d) if wanted & {"landmark", "dense"} else (None, None)
        if self.contour is not None and landmarks2d is not None:
            landmarks2d, dense2d = slide_contour(self.spec.model, self.contour, params, scene.camera, landmarks2d,
                                                 dense2d, None if scene.mesh is None else scene.mesh.verts)
        if "landmark" in wanted:
            weights = landmark_weights(self.spec.model, obs.confidence, params[POSE], self.contour)
            out["landmark"] = landmark_loss(landmarks2d, obs.landmarks, weights, face_size(obs.landmarks))
        if "dense" in wanted and obs.dense is not None and dense2d is not None:
            weights = obs.dense_confidence * dense_point_weights(self.spec.model)
            out["dense"] = robust_landmark_loss(dense2d, obs.dense, weights, face_size(obs.landmarks),
                                                DENSE_SIGMA)
            if obs.dense_weight is not None:
                out["dense"] = out["dense"] * obs.dense_weight
        if "photometric" in wanted and scene.render is not None:
            mask = scene.render.mask if obs.face_mask is None else scene.render.mask * obs.face_mask
            out["photometric"] = photometric_loss(scene.render.image, obs.image, mask)
        if "identity" in wanted and scene.render is not None and self.embedder is not None and obs.embedding is not None:
            out["identity"] = identity_loss(self.embedder.embed(scene.render.image, scene.landmarks2d), obs.embedding)
        if "prior" in wanted:
            prior = params[POSE].new_zeros(B)
            for name in (g for g in params if g in trainable):  # params order: the same sum on every process
                prior = prior + gaussian_prior(params[name], getattr(self, f"prior_std_{name}"))
            out["prior"] = prior
        if "symmetry" in wanted:
            symmetry = params[POSE].new_zeros(B)
            for name in (g for g in self.slider_pairs if g in trainable):
                symmetry = symmetry + slider_pair_prior(params[name], self.slider_pairs[name],
                                                        getattr(self, f"prior_std_{name}"))
            out["symmetry"] = symmetry
        if "bounds" in wanted:
            penalty = params[POSE].new_zeros(B)
            for name, group in self.spec.model.groups.items():
                if group.bounded and name in trainable:
                    p = params[name]
                    penalty = penalty + bound_penalty(p, p.new_tensor(group.lower), p.new_tensor(group.upper))
            out["bounds"] = penalty
        if "smoothness" in wanted and VERTEX_COLOR in params and scene.colors is not None:
            out["smoothness"] = vertex_color_smoothness(scene.colors, self.edges)
        return out
