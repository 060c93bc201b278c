"""Vectorised pure-PyTorch rasterizer (the default on CPU).

Algorithm (no Python loop over triangles or pixels):

1. Per triangle: drop it if a corner is non-finite or at ``Z <= MIN_DEPTH``, if its area is zero or
   if its pixel bounding box misses the image; otherwise keep the bounding box of the pixel
   centres it may cover and the coefficients of its edge functions.
2. Enumerate every (triangle, pixel of its bounding box) candidate, in chunks of at most
   ``max_candidates`` to bound memory, test coverage with the edge functions (a pixel centre on an
   edge counts as inside) and compute a depth key: the float32 bit pattern of the depth
   (orthographic) or of the inverse depth (pinhole, where inverse depth is affine in screen space),
   which orders like the float.
3. Z-buffer: pack ``depth key << face bits | face index`` into one int64 and ``scatter_reduce`` it with
   ``amin`` into the pixels: the nearest face wins, ties go to the lower face index (as in PyTorch3D).
4. Recompute barycentrics and depth differentiably for the winning face of every pixel only
   (``barycentrics_at_pixels``), so autograd sees a small, dense graph.

Steps 1-3 run without gradients; the gradient with respect to vertex positions flows through
step 4 alone, exactly as for PyTorch3D's hard rasterizer (no gradient through coverage).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from f2p.render.rasterize.barycentric import CoveredPixels, barycentrics_of
from f2p.render.rasterize.fragments import MIN_DEPTH, Fragments, check_inputs, empty_fragments

DEFAULT_MAX_CANDIDATES = 1 << 22
"""Candidate (triangle, pixel) pairs tested per chunk: about 200 MB of temporaries."""

MIN_DOUBLE_AREA = 1e-12
"""Squared pixels. Triangles whose doubled screen area is smaller are dropped as degenerate."""

_FLOAT_BITS_MAX = 0x7FFFFFFF
_EMPTY = torch.iinfo(torch.int64).max

# Rows of the per-triangle float table: barycentrics b1, b2 and depth plane q (q = 1 / Z for a
# pinhole, Z otherwise), each as its value at the bbox origin and its steps per pixel in x and y.
_B1, _B1X, _B1Y, _B2, _B2X, _B2Y, _Q, _QX, _QY = range(9)
# Rows of the per-triangle integer table: first candidate, bbox width, flat index of the bbox origin
# (b * H * W + ymin * W + xmin), face index.
_START, _WIDTH, _ORIGIN, _FACE = range(4)


class TorchRasterizer:
    """Hard z-buffer rasterizer in plain PyTorch; see the module docstring for the algorithm.

    Args:
        max_candidates: candidate (triangle, pixel) pairs per chunk; lower it to save memory.
    """

    name = "torch"

    def __init__(self, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> None:
        if max_candidates <= 0:
            raise ValueError(f"max_candidates must be positive, got {max_candidates}")
        self.max_candidates = max_candidates

    def __call__(self, screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int],
                 perspective_correct: bool) -> Fragments:
        """(B, V, 3) screen-space ``(u, v, Z)`` vertices, (F, 3) faces -> ``Fragments`` of size (H, W)."""
        check_inputs(screen_verts, faces, image_size)
        if faces.shape[0] == 0 or screen_verts.shape[1] == 0:
            return empty_fragments(screen_verts, image_size)
        faces = faces.long()
        with torch.no_grad():
            pix_to_face = self.visible_faces(screen_verts.detach(), faces, image_size, perspective_correct)
        pixels = CoveredPixels.from_pix_to_face(pix_to_face)
        bary, zbuf = barycentrics_of(screen_verts, faces, pixels, perspective_correct)
        return Fragments(pix_to_face=pix_to_face, bary=pixels.scatter(bary), zbuf=pixels.scatter(zbuf[:, None])[..., 0])

    def visible_faces(self, screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int],
                      perspective_correct: bool) -> Tensor:
        """(B, V, 3) screen vertices, (F, 3) faces -> (B, H, W) long index of the nearest face, -1 where empty."""
        B, _, _ = screen_verts.shape
        F = faces.shape[0]
        H, W = image_size
        floats, ints, counts = _triangle_setup(screen_verts.float(), faces, H, W, perspective_correct)
        face_bits = max(int(F - 1).bit_length(), 1)
        zkey = torch.full((B * H * W,), _EMPTY, dtype=torch.long, device=screen_verts.device)
        for lo, hi in _chunks(counts, self.max_candidates):
            pixel, key = _candidates(floats[:, lo:hi], ints[:, lo:hi], counts[lo:hi], W, face_bits,
                                     perspective_correct)
            zkey.scatter_reduce_(0, pixel, key, reduce="amin")
        face = torch.where(zkey == _EMPTY, -1, zkey & ((1 << face_bits) - 1))
        return face.view(B, H, W)


def _triangle_setup(screen_verts: Tensor, faces: Tensor, H: int, W: int,
                    perspective_correct: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triangle tables, one column per triangle of the batch (B * F columns, face-major per mesh).

    Tables are row-major with one row per quantity so that gathers by triangle give contiguous rows.

    Returns:
        floats: (9, B * F) barycentric and depth planes (see ``_B1`` ...).
        ints: (4, B * F) first candidate, bbox width, bbox origin pixel, face index.
        counts: (B * F,) candidates (bbox pixels) per triangle, 0 for dropped triangles.
    """
    B, V, _ = screen_verts.shape
    F = faces.shape[0]
    # (3 corners, B * F) vectors of each coordinate: corner-major rows make every later op contiguous.
    rows = (faces.T[:, None, :] + (torch.arange(B, device=faces.device) * V)[None, :, None]).reshape(-1)
    coords = screen_verts.reshape(B * V, 3).index_select(0, rows).T.reshape(3, 3, B * F)  # (xyz, corner, B * F)
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = (c.unbind(0) for c in coords.unbind(0))
    e1x, e1y, e2x, e2y = x1 - x0, y1 - y0, x2 - x0, y2 - y0
    area2 = e1x * e2y - e2x * e1y
    # area2 is non-finite whenever an x or y is; NaN fails every comparison.
    keep = torch.isfinite(area2) & (area2.abs() > MIN_DOUBLE_AREA)
    keep &= (torch.minimum(torch.minimum(z0, z1), z2) > MIN_DEPTH) & (torch.maximum(torch.maximum(z0, z1), z2) < math.inf)
    # Pixel centres inside the bounding box, clamped to the image (on clamped floats, so that huge
    # or non-finite coordinates never reach the integer conversion).
    xmin = torch.minimum(torch.minimum(x0, x1), x2).clamp(0, W).ceil()
    xmax = torch.maximum(torch.maximum(x0, x1), x2).clamp(-1, W - 1).floor()
    ymin = torch.minimum(torch.minimum(y0, y1), y2).clamp(0, H).ceil()
    ymax = torch.maximum(torch.maximum(y0, y1), y2).clamp(-1, H - 1).floor()
    width, height = xmax - xmin + 1, ymax - ymin + 1
    keep &= (width > 0) & (height > 0)
    area2 = torch.where(keep, area2, 1.0)
    # b1 = (dx e2y - dy e2x) / area2 and b2 = (e1x dy - e1y dx) / area2 with (dx, dy) from corner 0.
    b1x, b1y, b2x, b2y = e2y / area2, -e2x / area2, -e1y / area2, e1x / area2
    ox, oy = xmin - x0, ymin - y0  # bbox origin relative to corner 0
    b1, b2 = ox * b1x + oy * b1y, ox * b2x + oy * b2y
    q0, q1, q2 = (1.0 / z0, 1.0 / z1, 1.0 / z2) if perspective_correct else (z0, z1, z2)
    dq1, dq2 = q1 - q0, q2 - q0
    q = q0 + b1 * dq1 + b2 * dq2
    floats = torch.stack([b1, b1x, b1y, b2, b2x, b2y, q, b1x * dq1 + b2x * dq2, b1y * dq1 + b2y * dq2])
    floats = torch.where(keep, floats, 0.0)
    counts = torch.where(keep, width * height, 0.0).long()
    widths = torch.where(keep, width, 1.0).long()
    batch_base = (torch.arange(B, device=coords.device) * (H * W)).repeat_interleave(F)
    origin = torch.where(keep, batch_base + ymin.long() * W + xmin.long(), 0)
    face = torch.arange(F, device=coords.device).repeat(B)
    ints = torch.stack([torch.cumsum(counts, 0) - counts, widths, origin, face])
    return floats, ints, counts


def _chunks(counts: Tensor, max_candidates: int) -> list[tuple[int, int]]:
    """Split triangles into consecutive ranges of at most ``max_candidates`` candidates each
    (a single triangle larger than that forms its own range)."""
    if counts.numel() == 0:
        return []
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1])
    if total <= max_candidates:
        return [(0, counts.numel())]
    bounds = [0]
    while bounds[-1] < counts.numel():
        lo = bounds[-1]
        before = int(ends[lo - 1]) if lo > 0 else 0
        hi = int(torch.searchsorted(ends, before + max_candidates, right=True))
        bounds.append(max(hi, lo + 1))
    return list(zip(bounds[:-1], bounds[1:]))


def _candidates(floats: Tensor, ints: Tensor, counts: Tensor, W: int, face_bits: int,
                perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Test every (triangle, bbox pixel) candidate of a chunk of triangles.

    Args:
        floats: (9, T) and ints: (4, T) tables of the chunk's triangles; counts: (T,) their candidates.

    Returns:
        pixel: (N,) flat pixel index b * H * W + y * W + x.
        key: (N,) int64 ``depth key << face_bits | face``, or the empty key where the centre is outside.
    """
    N = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts, output_size=N)
    tri_int = ints.index_select(1, owner)  # (4, N), contiguous rows
    tri_float = floats.index_select(1, owner)  # (9, N)
    local = torch.arange(N, device=counts.device) - (tri_int[_START] - ints[_START, 0])
    row = local // tri_int[_WIDTH]
    col = local - row * tri_int[_WIDTH]
    pixel = tri_int[_ORIGIN] + row * W + col
    fcol, frow = col.to(floats.dtype), row.to(floats.dtype)
    b1 = tri_float[_B1] + fcol * tri_float[_B1X] + frow * tri_float[_B1Y]
    b2 = tri_float[_B2] + fcol * tri_float[_B2X] + frow * tri_float[_B2Y]
    q = tri_float[_Q] + fcol * tri_float[_QX] + frow * tri_float[_QY]
    inside = (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (q > 0)
    bits = q.view(torch.int32).long()  # positive floats order like their bit patterns
    depth_key = _FLOAT_BITS_MAX - bits if perspective_correct else bits  # nearest = largest 1 / Z
    key = torch.where(inside, (depth_key << face_bits) | tri_int[_FACE], _EMPTY)
    return pixel, key
