"""Second-order spherical-harmonics lighting of Lambertian surfaces.

Frame
    Lighting is attached to the camera and expressed in the *light frame*: x right, y up, z towards
    the viewer (the OpenCV camera frame turned half a turn about x, ``CAMERA_TO_LIGHT``). A frontal
    light is +z and a light from above is +y whatever the head pose.

Formula
    With unit normal ``n = (x, y, z)`` the 9 real SH functions (no Condon-Shortley phase), index
    ``k = l^2 + l + m``::

        Y_0 = 0.282095                  Y_4 = 1.092548 x y
        Y_1 = 0.488603 y                Y_5 = 1.092548 y z
        Y_2 = 0.488603 z                Y_6 = 0.315392 (3 z^2 - 1)
        Y_3 = 0.488603 x                Y_7 = 1.092548 x z
                                        Y_8 = 0.546274 (x^2 - y^2)

    The Lambertian (clamped-cosine) convolution scales band ``l`` by ``A_0 = pi``, ``A_1 = 2 pi / 3``,
    ``A_2 = pi / 4`` (Ramamoorthi & Hanrahan 2001), and the Lambertian BRDF divides by pi, so
    ``sh_basis(n)_k = A_l / pi * Y_k(n)`` and the outgoing radiance of a surface of albedo rho is::

        shading(n) = sum_k coeffs[k] * sh_basis(n)_k          image = rho * shading(n)

    where ``coeffs`` are the SH coefficients of the incoming radiance, per colour channel. A uniform
    white environment of radiance 1 (``coeffs[0] = sqrt(4 pi)``) gives ``shading = 1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV

NUM_SH = 9
"""Coefficients of second-order spherical harmonics (bands l = 0, 1, 2)."""

CAMERA_TO_LIGHT = MODEL_TO_OPENCV
"""(3, 3) rotation from the OpenCV camera frame to the light frame (its own inverse)."""

_Y0 = 0.5 / math.sqrt(math.pi)
_Y1 = math.sqrt(3.0 / (4.0 * math.pi))
_Y2 = 0.5 * math.sqrt(15.0 / math.pi)
_Y20 = 0.25 * math.sqrt(5.0 / math.pi)
_Y22 = 0.25 * math.sqrt(15.0 / math.pi)
LAMBERT_BAND = (1.0, 2.0 / 3.0, 1.0 / 4.0)
"""``A_l / pi`` for l = 0, 1, 2."""

DEFAULT_AMBIENT = 0.7
"""Shading of ``default_sh`` on a surface seen edge-on (grazing normal)."""

DEFAULT_FRONTAL = 0.3
"""Extra shading of ``default_sh`` on a surface facing the camera (so a frontal surface gets 1.0)."""


def sh_basis(normals: Tensor) -> Tensor:
    """(..., 3) unit normals in the light frame -> (..., 9) Lambertian SH basis ``A_l / pi * Y_k(n)``."""
    if normals.shape[-1] != 3:
        raise ValueError(f"normals must have shape (..., 3), got {tuple(normals.shape)}")
    x, y, z = normals.unbind(-1)
    a0, a1, a2 = LAMBERT_BAND
    return torch.stack([
        torch.full_like(x, a0 * _Y0),
        a1 * _Y1 * y,
        a1 * _Y1 * z,
        a1 * _Y1 * x,
        a2 * _Y2 * x * y,
        a2 * _Y2 * y * z,
        a2 * _Y20 * (3.0 * z * z - 1.0),
        a2 * _Y2 * x * z,
        a2 * _Y22 * (x * x - y * y),
    ], -1)


def sh_shading(normals: Tensor, coeffs: Tensor) -> Tensor:
    """Shade unit normals with SH light.

    Args:
        normals: (B, N, 3) or (B, ..., 3) unit normals in the light frame.
        coeffs: (B, 9, 3) SH coefficients of incoming radiance per colour (R, G, B).

    Returns:
        (B, N, 3) or (B, ..., 3) RGB shading (multiply by albedo to get radiance).
    """
    B = normals.shape[0]
    if coeffs.shape != (B, NUM_SH, 3):
        raise ValueError(f"coeffs must have shape ({B}, {NUM_SH}, 3), got {tuple(coeffs.shape)}")
    basis = sh_basis(normals)  # (B, ..., 9)
    flat = basis.reshape(B, -1, NUM_SH)  # (B, N, 9)
    return (flat @ coeffs).reshape(*normals.shape)


def sh_shading_indexed(normals: Tensor, coeffs: Tensor, batch: Tensor) -> Tensor:
    """Shade a flat list of normals, each with the light of its batch item.

    Args:
        normals: (M, 3) unit normals in the light frame, grouped by batch item in increasing order
            (as ``CoveredPixels`` lists them).
        coeffs: (B, 9, 3) SH coefficients per batch item.
        batch: (M,) non-decreasing batch item of each normal.

    Returns:
        (M, 3) RGB shading.
    """
    B = coeffs.shape[0]
    if coeffs.shape != (B, NUM_SH, 3):
        raise ValueError(f"coeffs must have shape (B, {NUM_SH}, 3), got {tuple(coeffs.shape)}")
    basis = sh_basis(normals)  # (M, 9)
    counts = torch.bincount(batch, minlength=B).tolist()
    # One (M_b, 9) @ (9, 3) product per batch item: dense GEMMs beat M tiny batched products.
    return torch.cat([segment @ coeffs[b] for b, segment in enumerate(basis.split(counts))])


def default_sh(batch_size: int, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, 9, 3) white light: ambient ``DEFAULT_AMBIENT`` plus ``DEFAULT_FRONTAL`` on camera-facing normals.

    Only bands 0 and the z term of band 1 are set: ``shading(n) = 0.7 + 0.3 n_z`` in the light frame.
    """
    a0, a1, _ = LAMBERT_BAND
    coeffs = torch.zeros(batch_size, NUM_SH, 3, device=device, dtype=dtype)
    coeffs[:, 0] = DEFAULT_AMBIENT / (a0 * _Y0)
    coeffs[:, 2] = DEFAULT_FRONTAL / (a1 * _Y1)
    return coeffs
