"""LightningModules composing the pieces: per-photo fitting and the learned regressor."""
