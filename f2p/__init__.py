"""f2p: face-to-parameter translation with explicit 3D face models and differentiable rendering."""

__version__ = "0.1.0"
