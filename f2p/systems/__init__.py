"""LightningModules composing the pieces: per-photo fitting and the learned regressor."""

from f2p.systems.regressor import LossWeights, RegressorSystem, load_regressor

__all__ = ["LossWeights", "RegressorSystem", "load_regressor"]
