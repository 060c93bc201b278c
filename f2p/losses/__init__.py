"""Losses shared by fitting and the regressor: each is a pure function plus a thin nn.Module."""

from f2p.losses.identity import IdentityLoss, identity_loss
from f2p.losses.landmark import LandmarkLoss, landmark_loss
from f2p.losses.photometric import PhotometricLoss, photometric_loss
from f2p.losses.priors import BoundPenalty, GaussianPrior, bound_penalty, gaussian_prior
from f2p.losses.smoothness import VertexColorSmoothness, vertex_color_smoothness

__all__ = [
    "BoundPenalty", "GaussianPrior", "IdentityLoss", "LandmarkLoss", "PhotometricLoss", "VertexColorSmoothness",
    "bound_penalty", "gaussian_prior", "identity_loss", "landmark_loss", "photometric_loss", "vertex_color_smoothness",
]
