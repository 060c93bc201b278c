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

import torch
from torch import Tensor

from f2p.render.rasterize.barycentric import barycentrics_at_pixels
from f2p.render.rasterize.fragments import MIN_DEPTH, Fragments, check_inputs, empty_fragments

DEFAULT_MAX_CANDIDATES = 1 << 22
"""Candidate (triangle, pixel) pairs tested per chunk: about 200 MB of temporaries."""

MIN_DOUBLE_AREA = 1e-12
"""Squared pixels. Triangles whose doubled screen area is smaller are dropped as degenerate."""

_FLOAT_BITS_MAX = 0x7FFFFFFF
_EMPTY = torch.iinfo(torch.int64).max

# Columns of the per-triangle float table used by candidates.
_X0, _Y0, _B1X, _B1Y, _B2X, _B2Y, _Q0, _Q1, _Q2 = range(9)
# Columns of the per-triangle integer table.
_START, _WIDTH, _XMIN, _YMIN, _PIXEL_BASE, _FACE = range(6)


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
        bary, zbuf = barycentrics_at_pixels(screen_verts, faces, pix_to_face, perspective_correct)
        return Fragments(pix_to_face=pix_to_face, bary=bary, zbuf=zbuf)

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
            pixel, key = _candidates(floats[lo:hi], ints[lo:hi], counts[lo:hi], W, face_bits, perspective_correct)
            zkey.scatter_reduce_(0, pixel, key, reduce="amin")
        face = torch.where(zkey == _EMPTY, -1, zkey & ((1 << face_bits) - 1))
        return face.view(B, H, W)


def _triangle_setup(screen_verts: Tensor, faces: Tensor, H: int, W: int,
                    perspective_correct: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triangle tables for the triangles that may cover a pixel centre.

    Returns:
        floats: (T, 9) x0, y0, the edge-function coefficients of b1 and b2 relative to corner 0,
            and the depth plane q0, q1 - q0, q2 - q0 (q = 1 / Z for perspective, Z otherwise).
        ints: (T, 6) first candidate of the triangle, bbox width, bbox x/y min, b * H * W, face index.
        counts: (T,) candidates (bbox pixels) per triangle, all positive.
    """
    B, _, _ = screen_verts.shape
    F = faces.shape[0]
    tri = screen_verts[:, faces]  # (B, F, 3, 3)
    x, y, z = tri.unbind(-1)  # (B, F, 3)
    e1x, e1y = x[..., 1] - x[..., 0], y[..., 1] - y[..., 0]
    e2x, e2y = x[..., 2] - x[..., 0], y[..., 2] - y[..., 0]
    area2 = e1x * e2y - e2x * e1y
    keep = torch.isfinite(tri).flatten(2).all(-1) & (z > MIN_DEPTH).all(-1) & (area2.abs() > MIN_DOUBLE_AREA)
    # Pixel centres inside the bounding box, clamped to the image (computed on clamped floats so
    # that huge coordinates never overflow the integer conversion).
    xmin = x.amin(-1).clamp(-1, W).ceil()
    xmax = x.amax(-1).clamp(-1, W).floor().clamp(max=W - 1)
    ymin = y.amin(-1).clamp(-1, H).ceil()
    ymax = y.amax(-1).clamp(-1, H).floor().clamp(max=H - 1)
    xmin, ymin = xmin.clamp(min=0), ymin.clamp(min=0)
    width, height = xmax - xmin + 1, ymax - ymin + 1
    keep &= (width > 0) & (height > 0)
    index = keep.reshape(-1).nonzero().squeeze(1)  # (T,) into B * F

    def pick(value: Tensor) -> Tensor:
        return value.reshape(-1)[index]

    area2 = pick(area2)
    q = 1.0 / z if perspective_correct else z
    q0 = pick(q[..., 0])
    floats = torch.stack([
        pick(x[..., 0]), pick(y[..., 0]),
        pick(e2y) / area2, -pick(e2x) / area2,
        -pick(e1y) / area2, pick(e1x) / area2,
        q0, pick(q[..., 1]) - q0, pick(q[..., 2]) - q0,
    ], 1)
    widths = pick(width).long()
    counts = widths * pick(height).long()
    starts = torch.cumsum(counts, 0) - counts
    batch = index // F
    ints = torch.stack([starts, widths, pick(xmin).long(), pick(ymin).long(), batch * (H * W), index - batch * F], 1)
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
    """Test every (triangle, bbox pixel) candidate of a chunk.

    Returns:
        pixel: (N,) flat pixel index b * H * W + y * W + x.
        key: (N,) int64 ``depth key << face_bits | face``, or the empty key where the centre is outside.
    """
    N = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts, output_size=N)
    tri_int = ints.index_select(0, owner)  # (N, 6)
    tri_float = floats.index_select(0, owner)  # (N, 9)
    local = torch.arange(N, device=counts.device) - (tri_int[:, _START] - tri_int[0, _START])
    row = local // tri_int[:, _WIDTH]
    px = tri_int[:, _XMIN] + (local - row * tri_int[:, _WIDTH])
    py = tri_int[:, _YMIN] + row
    dx = px.to(floats.dtype) - tri_float[:, _X0]
    dy = py.to(floats.dtype) - tri_float[:, _Y0]
    b1 = dx * tri_float[:, _B1X] + dy * tri_float[:, _B1Y]
    b2 = dx * tri_float[:, _B2X] + dy * tri_float[:, _B2Y]
    inside = (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
    q = tri_float[:, _Q0] + b1 * tri_float[:, _Q1] + b2 * tri_float[:, _Q2]
    bits = q.view(torch.int32).long()  # positive floats order like their bit patterns
    depth_key = _FLOAT_BITS_MAX - bits if perspective_correct else bits  # nearest = largest 1 / Z
    key = torch.where(inside & (q > 0), (depth_key << face_bits) | tri_int[:, _FACE], _EMPTY)
    pixel = tri_int[:, _PIXEL_BASE] + py * W + px
    return pixel, key
