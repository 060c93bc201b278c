"""Vectorised pure-PyTorch rasterizer (the default on CPU).

Algorithm (no Python loop over triangles or pixels):

1. Triangles: drop a triangle if a corner is non-finite or at ``Z <= MIN_DEPTH``, if its area is
   zero or if its pixel bounding box misses the image; otherwise keep its bounding box and the
   planes of two barycentrics and of the depth quantity ``q`` (``1 / Z`` for a pinhole camera, where
   it is affine in screen space; ``Z`` for an orthographic one) over the box.
2. Scanlines: for every (triangle, bbox row) pair, intersect the row with the three edge half-planes
   to get the span of pixel centres the triangle may cover (slightly widened against rounding).
3. Pixels: for every (row, pixel of its span), test coverage exactly with the edge functions (a
   pixel centre on an edge counts as inside) and pack ``depth key << face bits | face index`` into
   one int64, the depth key being the float32 bit pattern of ``q`` (positive floats order like their
   bits), reversed for ``1 / Z``.
4. Z-buffer: ``scatter_reduce`` the keys with ``amin`` into the pixels: the nearest face wins, ties
   go to the lower face index (as in PyTorch3D).
5. Recompute barycentrics and depth differentiably for the winning face of the covered pixels only
   (``barycentrics_of``), so autograd sees a small graph.

Steps 1-4 run without gradients, in float32 whatever the input dtype, in chunks of triangles whose
bounding boxes hold at most ``max_candidates`` pixels (to bound memory); the gradient with respect
to vertex positions flows through step 5 alone, exactly as for PyTorch3D's hard rasterizer (no
gradient through coverage). Scanline spans keep the pixel stage to the pixels a triangle covers,
about a third of its bounding box, which matters for large triangles (high resolutions,
close-ups); triangles within a ``TILE`` x ``TILE`` box skip the scanline stage.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from f2p.render.rasterize.barycentric import CoveredPixels, barycentrics_of
from f2p.render.rasterize.fragments import MIN_DEPTH, Fragments, check_inputs, empty_fragments

DEFAULT_MAX_CANDIDATES = 1 << 22
"""Bounding-box pixels of the triangles processed per chunk: about 300 MB of temporaries at most."""

MIN_DOUBLE_AREA = 1e-12
"""Squared pixels. Triangles whose doubled screen area is smaller are dropped as degenerate."""

TILE = 2
"""Triangles whose bounding box fits in TILE x TILE pixels (most triangles of a face mesh at 224 px)
test all those pixels directly, without scanlines."""

SPAN_SLACK = 1e-3
"""Pixels added on both sides of a scanline span so that rounding in the span never drops a pixel
centre the exact edge test would accept."""

_FLOAT_BITS_MAX = 0x7FFFFFFF
_EMPTY = torch.iinfo(torch.int64).max

# Rows of the per-triangle float table: barycentrics b1, b2 and the depth quantity q, each as its
# value at the bbox origin and its steps per pixel in x and y.
_B1, _B1X, _B1Y, _B2, _B2X, _B2Y, _Q, _QX, _QY = range(9)
# Rows of the per-triangle integer table: bbox width and height (0 for dropped triangles), flat index
# of the bbox origin (b * H * W + ymin * W + xmin), face index.
_WIDTH, _HEIGHT, _ORIGIN, _FACE = range(4)
# Rows of the per-scanline float table: b1, b2 and q at the row's first candidate and their x steps.
_R_B1, _R_B1X, _R_B2, _R_B2X, _R_Q, _R_QX = range(6)
# Rows of the per-scanline integer table: first pixel, flat index of the first candidate, face.
_R_START, _R_PIXEL, _R_FACE = range(3)


class TorchRasterizer:
    """Hard z-buffer rasterizer in plain PyTorch; see the module docstring for the algorithm.

    Args:
        max_candidates: bounding-box pixels per chunk of triangles; lower it to save memory.
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
        return Fragments(pix_to_face=pix_to_face, bary=pixels.scatter(bary),
                         zbuf=pixels.scatter(zbuf[:, None])[..., 0])

    def visible_faces(self, screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int],
                      perspective_correct: bool) -> Tensor:
        """(B, V, 3) screen vertices, (F, 3) faces -> (B, H, W) long index of the nearest face, -1 where empty."""
        B, _, _ = screen_verts.shape
        F = faces.shape[0]
        H, W = image_size
        floats, ints, rows, box_pixels = _triangle_setup(screen_verts.float(), faces, H, W, perspective_correct)
        face_bits = max(int(F - 1).bit_length(), 1)
        zkey = torch.full((B * H * W,), _EMPTY, dtype=torch.long, device=screen_verts.device)
        # Triangles within a TILE x TILE box: every box pixel at once; larger ones: scanline spans.
        tiny = (rows > 0) & (rows <= TILE) & (ints[_WIDTH] <= TILE)
        for index in _chunks(tiny.nonzero().squeeze(1), self.max_candidates // TILE**2):
            pixel, key = _tile_pixels(floats[:, index], ints[:, index], W, face_bits, perspective_correct)
            zkey.scatter_reduce_(0, pixel, key, reduce="amin")
        large = ((rows > 0) & ~tiny).nonzero().squeeze(1)
        for index in _chunks(large, self.max_candidates, box_pixels[large]):
            row_floats, row_ints, spans = _scanlines(floats[:, index], ints[:, index], rows[index], W)
            pixel, key = _pixels(row_floats, row_ints, spans, face_bits, perspective_correct)
            zkey.scatter_reduce_(0, pixel, key, reduce="amin")
        face = torch.where(zkey == _EMPTY, -1, zkey & ((1 << face_bits) - 1))
        return face.view(B, H, W)


def _triangle_setup(screen_verts: Tensor, faces: Tensor, H: int, W: int,
                    perspective_correct: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-triangle tables, one column per triangle of the batch (B * F columns, batch-major).

    Tables have one row per quantity so that gathers by triangle give contiguous rows.

    Returns:
        floats: (9, B * F) barycentric and depth planes over the bbox (see ``_B1`` ...).
        ints: (4, B * F) bbox width and height, bbox origin pixel, face index.
        rows: (B * F,) bbox rows per triangle, 0 for dropped triangles.
        box_pixels: (B * F,) bbox pixels per triangle, 0 for dropped triangles.
    """
    B, V, _ = screen_verts.shape
    F = faces.shape[0]
    # (3 corners, B * F) vectors of each coordinate: corner-major rows make every later op contiguous.
    corner_rows = (faces.T[:, None, :] + (torch.arange(B, device=faces.device) * V)[None, :, None]).reshape(-1)
    coords = screen_verts.reshape(B * V, 3).index_select(0, corner_rows).T.reshape(3, 3, B * F)  # (xyz, corner, .)
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = (c.unbind(0) for c in coords.unbind(0))
    e1x, e1y, e2x, e2y = x1 - x0, y1 - y0, x2 - x0, y2 - y0
    area2 = e1x * e2y - e2x * e1y
    # area2 is non-finite whenever an x or y is; NaN fails every comparison.
    keep = torch.isfinite(area2) & (area2.abs() > MIN_DOUBLE_AREA)
    keep &= torch.minimum(torch.minimum(z0, z1), z2) > MIN_DEPTH
    keep &= torch.maximum(torch.maximum(z0, z1), z2) < math.inf
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
    rows = torch.where(keep, height, 0.0).long()
    box_pixels = torch.where(keep, width * height, 0.0).long()
    batch_base = (torch.arange(B, device=coords.device) * (H * W)).repeat_interleave(F)
    origin = torch.where(keep, batch_base + ymin.long() * W + xmin.long(), 0)
    face = torch.arange(F, device=coords.device).repeat(B)
    ints = torch.stack([torch.where(keep, width, 0.0).long(), rows, origin, face])
    return floats, ints, rows, box_pixels


def _chunks(index: Tensor, max_candidates: int, sizes: Tensor | None = None) -> list[Tensor]:
    """Split triangle indices into consecutive groups of at most ``max_candidates`` summed ``sizes``
    (1 each by default); a single triangle larger than that forms its own group."""
    if index.numel() == 0:
        return []
    if sizes is None:
        return list(index.split(max(max_candidates, 1)))
    ends = torch.cumsum(sizes, 0)
    bounds = [0]
    while bounds[-1] < index.numel():
        lo = bounds[-1]
        before = int(ends[lo - 1]) if lo > 0 else 0
        hi = int(torch.searchsorted(ends, before + max_candidates, right=True))
        bounds.append(max(hi, lo + 1))
    return [index[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _tile_pixels(floats: Tensor, ints: Tensor, W: int, face_bits: int,
                 perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Test the TILE x TILE pixels at the bbox origin of triangles whose bbox fits in such a tile.

    Args:
        floats: (9, T), ints: (4, T) triangle tables with bbox width and height <= TILE.

    Returns:
        pixel: (T * TILE^2,) flat pixel index; key: (T * TILE^2,) as in ``_pixels`` (empty outside the bbox).
    """
    offsets = torch.arange(TILE, device=floats.device)
    col = offsets.repeat(TILE).to(floats.dtype)[None]  # (1, TILE^2)
    row = offsets.repeat_interleave(TILE).to(floats.dtype)[None]
    b1 = floats[_B1, :, None] + col * floats[_B1X, :, None] + row * floats[_B1Y, :, None]  # (T, TILE^2)
    b2 = floats[_B2, :, None] + col * floats[_B2X, :, None] + row * floats[_B2Y, :, None]
    q = floats[_Q, :, None] + col * floats[_QX, :, None] + row * floats[_QY, :, None]
    in_box = (col < ints[_WIDTH, :, None]) & (row < ints[_HEIGHT, :, None])
    inside = in_box & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (q > 0)
    key = _depth_keys(q, inside, ints[_FACE, :, None], face_bits, perspective_correct)
    pixel = ints[_ORIGIN, :, None] + torch.where(in_box, row.long() * W + col.long(), 0)  # stay in the image
    return pixel.reshape(-1), key.reshape(-1)


def _depth_keys(q: Tensor, inside: Tensor, face: Tensor, face_bits: int, perspective_correct: bool) -> Tensor:
    """int64 ``depth key << face_bits | face`` (nearest = smallest), the empty key where not ``inside``."""
    bits = q.view(torch.int32).long()  # positive floats order like their bit patterns
    depth_key = _FLOAT_BITS_MAX - bits if perspective_correct else bits  # nearest = largest 1 / Z
    return torch.where(inside, (depth_key << face_bits) | face, _EMPTY)


def _scanlines(floats: Tensor, ints: Tensor, rows: Tensor, W: int) -> tuple[Tensor, Tensor, Tensor]:
    """Span of each (triangle, bbox row) of a chunk.

    On row ``r`` each barycentric is ``c + a * col`` for the bbox column ``col``; the triangle covers
    the columns where all three are >= 0, an interval bounded by ``-c / a`` for each edge.

    Args:
        floats: (9, T), ints: (4, T) triangle tables; rows: (T,) bbox rows per triangle.

    Returns:
        row_floats: (6, R) planes at each row's first span pixel (see ``_R_B1`` ...).
        row_ints: (3, R) first pixel of the row's span in the chunk, flat pixel index, face.
        spans: (R,) pixels per span (>= 0).
    """
    R = int(rows.sum())
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), rows, output_size=R)
    tri_float = floats.index_select(1, owner)  # (9, R), contiguous rows
    tri_int = ints.index_select(1, owner)  # (4, R)
    first_row = (torch.cumsum(rows, 0) - rows).index_select(0, owner)
    row = (torch.arange(R, device=rows.device) - first_row).to(floats.dtype)
    c1 = tri_float[_B1] + row * tri_float[_B1Y]
    c2 = tri_float[_B2] + row * tri_float[_B2Y]
    a1, a2 = tri_float[_B1X], tri_float[_B2X]
    lo = torch.zeros_like(c1)
    hi = tri_int[_WIDTH].to(floats.dtype) - 1.0
    for c, a in ((1.0 - c1 - c2, -a1 - a2), (c1, a1), (c2, a2)):
        bound = -c / torch.where(a == 0, 1.0, a)
        lo = torch.where(a > 0, torch.maximum(lo, bound), lo)
        hi = torch.where(a < 0, torch.minimum(hi, bound), hi)
        hi = torch.where((a == 0) & (c < 0), -1.0, hi)  # an edge parallel to the row with the row outside
    first = (lo - SPAN_SLACK).ceil().clamp(min=0)
    last = torch.minimum((hi + SPAN_SLACK).floor(), tri_int[_WIDTH].to(floats.dtype) - 1.0)
    spans = (last - first + 1).clamp(min=0).long()
    row_floats = torch.stack([c1 + first * a1, a1, c2 + first * a2, a2,
                              tri_float[_Q] + row * tri_float[_QY] + first * tri_float[_QX], tri_float[_QX]])
    pixel = tri_int[_ORIGIN] + row.long() * W + first.long()
    row_ints = torch.stack([torch.cumsum(spans, 0) - spans, pixel, tri_int[_FACE]])
    return row_floats, row_ints, spans


def _pixels(row_floats: Tensor, row_ints: Tensor, spans: Tensor, face_bits: int,
            perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Test every pixel of every span of a chunk.

    Returns:
        pixel: (N,) flat pixel index b * H * W + y * W + x.
        key: (N,) int64 ``depth key << face_bits | face``, or the empty key where the centre is outside.
    """
    N = int(spans.sum())
    owner = torch.repeat_interleave(torch.arange(spans.numel(), device=spans.device), spans, output_size=N)
    floats = row_floats.index_select(1, owner)  # (6, N)
    ints = row_ints.index_select(1, owner)  # (3, N)
    step = torch.arange(N, device=spans.device) - ints[_R_START]
    col = step.to(floats.dtype)
    b1 = floats[_R_B1] + col * floats[_R_B1X]
    b2 = floats[_R_B2] + col * floats[_R_B2X]
    q = floats[_R_Q] + col * floats[_R_QX]
    inside = (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (q > 0)
    key = _depth_keys(q, inside, ints[_R_FACE], face_bits, perspective_correct)
    return ints[_R_PIXEL] + step, key
