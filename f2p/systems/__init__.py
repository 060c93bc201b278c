"""LightningModules composing the pieces: per-photo fitting and the learned regressor."""

from f2p.systems.checkpoints import load_regressor
from f2p.systems.regressor import LossWeights, RegressorSystem

__all__ = ["LossWeights", "RegressorSystem", "load_regressor"]
