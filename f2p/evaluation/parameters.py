"""Parameter recovery: how far estimated parameters of a face model are from the true ones.

The one implementation behind the regressor's logged errors on synthetic data (``systems.regressor``:
``param_error*``, ``vertex_error_mm``, ``pose_error_deg``) and the synthetic evaluation's report columns
(``evaluation.synthetic``: ``<group>_rmse_std``, ``<group>_rmse_shape``, vertex and pose errors), so that the two
mean the same thing:

- standardised RMSE: ``sqrt(mean_k ((estimate_k - truth_k) / scale_k)^2)`` per model group and over all of them,
  plain and weighed by each component's share of the face's shape variance (``evaluation.shape_weights``);
- distance in millimetres of each face-region vertex (``model.face_region``) of the unposed meshes, as they are
  or after a rigid or similarity alignment (``evaluation.geometry``);
- head-rotation errors in degrees, per Euler angle and geodesic (``evaluation.pose``).

The scales are an argument because the callers standardise differently: the evaluation by the model's prior
standard deviations (``prior_scales``), the regressor by its parameter head's scales (``ParamHead.scale``: the
prior standard deviation too, but a slider's range for a bounded group, the unit of its outputs and of its
supervised term). Given the same scales, both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.conventions import MM_PER_M
from f2p.evaluation.geometry import vertex_errors
from f2p.evaluation.pose import pose_errors
from f2p.evaluation.shape_weights import shape_variance, shape_weighted_rmse
from f2p.morphable.base import MorphableModel
from f2p.render.rotations import axis_angle_to_matrix
from f2p.scene.params import POSE


@dataclass(frozen=True)
class RecoveryErrors:
    """Errors of estimated against true parameters of B faces, in the scales ``recovery_errors`` was given.

    Attributes:
        rmse: (B,) standardised RMSE over every component of the model's groups.
        group_rmse: {group: (B,)} standardised RMSE of each model group.
        shape_rmse: (B,) shape-weighted standardised RMSE over all the model's groups.
        group_shape_rmse: {group: (B,)} the same for each model group that moves the face (not albedo).
        vertex_mm: {alignment: (B, V_region)} face-region vertex distances in millimetres, per alignment asked for.
        pose_deg: {"yaw", "pitch", "roll", "geodesic": (B,)} head-rotation errors in degrees.
    """

    rmse: Tensor
    group_rmse: dict[str, Tensor]
    shape_rmse: Tensor
    group_shape_rmse: dict[str, Tensor]
    vertex_mm: dict[str, Tensor]
    pose_deg: dict[str, Tensor]


def prior_scales(model: MorphableModel) -> dict[str, Tensor]:
    """{group: (K,)} prior standard deviations of the model's groups, on its device: the evaluation's scales."""
    return {name: torch.tensor(group.prior_std, device=model.device) for name, group in model.groups.items()}


def vertex_errors_mm(model: MorphableModel, estimate: dict[str, Tensor], truth: dict[str, Tensor],
                     alignments: tuple[str, ...] = ("none",)) -> dict[str, Tensor]:
    """{alignment: (B, V_region)} distance in millimetres of each face-region vertex of the unposed meshes of
    ``estimate`` and ``truth`` ({group: (B, K)}; the model's groups are used), after each alignment ("none",
    "rigid", "similarity": ``geometry.vertex_errors``). Differentiable (the regressor's supervised term)."""
    verts = model(**{name: estimate[name] for name in model.groups}).verts  # (B, V, 3)
    true_verts = model(**{name: truth[name] for name in model.groups}).verts
    return {align: vertex_errors(verts, true_verts, model.face_region, align) * MM_PER_M for align in alignments}


def recovery_errors(model: MorphableModel, estimate: dict[str, Tensor], truth: dict[str, Tensor],
                    scales: dict[str, Tensor], alignments: tuple[str, ...] = ("none",)) -> RecoveryErrors:
    """Errors of ``estimate`` against ``truth`` (module docstring).

    Args:
        model: the face model of the parameters.
        estimate, truth: {group: (B, K)} parameters holding at least the model's groups and ``POSE``.
        scales: {group: (K,)} one standardisation unit per component of each model group: ``prior_scales`` (the
            evaluation) or the regressor head's ``scale`` (a slider's range for bounded groups).
        alignments: the vertex alignments to measure after (``geometry.ALIGNMENTS``).
    """
    standardised = {name: (estimate[name] - truth[name]) / scales[name] for name in model.groups}  # (B, K) each
    variance = shape_variance(model, {name: scales[name] for name in model.groups})
    return RecoveryErrors(
        rmse=torch.cat(list(standardised.values()), dim=1).pow(2).mean(1).sqrt(),
        group_rmse={name: value.pow(2).mean(1).sqrt() for name, value in standardised.items()},
        shape_rmse=shape_weighted_rmse(standardised, variance),
        group_shape_rmse={name: shape_weighted_rmse({name: value}, variance)
                          for name, value in standardised.items() if variance[name].sum() > 0},
        vertex_mm=vertex_errors_mm(model, estimate, truth, alignments),
        pose_deg=pose_errors(axis_angle_to_matrix(estimate[POSE]), axis_angle_to_matrix(truth[POSE])))
