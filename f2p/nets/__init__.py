"""Networks of the learned regressor (plain nn.Modules): image encoder + parameter head, neural refiner."""

from f2p.nets.encoder import FaceRegressor, ParamHead, ResNetEncoder
from f2p.nets.refiner import UNetRefiner, render_buffers

__all__ = ["FaceRegressor", "ParamHead", "ResNetEncoder", "UNetRefiner", "render_buffers"]
