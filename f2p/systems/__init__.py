"""LightningModules composing the pieces: per-photo fitting and the learned regressor (import them from their
modules: ``f2p.systems.regressor``, ``f2p.systems.fitting``, ...; importing this package imports no Lightning)."""
