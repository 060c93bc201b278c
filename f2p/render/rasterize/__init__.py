"""Rasterizer backends behind one interface: screen-space triangles in, ``Fragments`` out."""

from f2p.render.rasterize.barycentric import barycentrics_at_pixels
from f2p.render.rasterize.factory import BACKENDS, get_rasterizer, resolve_backend
from f2p.render.rasterize.fragments import MIN_DEPTH, Fragments, Rasterizer
from f2p.render.rasterize.torch_backend import TorchRasterizer

__all__ = ["BACKENDS", "MIN_DEPTH", "Fragments", "Rasterizer", "TorchRasterizer", "barycentrics_at_pixels",
           "get_rasterizer", "resolve_backend"]
