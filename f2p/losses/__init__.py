"""Losses shared by fitting and the regressor: pure functions of tensors, each documenting its shapes and formula;
their callers (``scene.objective.FittingObjective``, the regressor system) hold the weights and priors. The one
module is ``perceptual.PerceptualLoss``, which owns a VGG network."""

from f2p.losses.identity import identity_loss
from f2p.losses.landmark import landmark_loss
from f2p.losses.photometric import photometric_loss
from f2p.losses.priors import bound_penalty, gaussian_prior
from f2p.losses.smoothness import vertex_color_smoothness

__all__ = ["bound_penalty", "gaussian_prior", "identity_loss", "landmark_loss", "photometric_loss",
           "vertex_color_smoothness"]
