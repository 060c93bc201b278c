"""Shipped network weights (state dicts with their hyper-parameters and model cards), read by
``f2p.systems.landmark_weights``."""
