"""MediaPipe's face-mesh topology as f2p's dense-landmark convention, and its iBUG-68 view.

Dense landmarks are MediaPipe Face Mesh points in MediaPipe's order: 468 mesh points
(``NUM_MESH_POINTS``), optionally followed by 5 points of the subject's right iris and 5 of the left
(``NUM_DENSE_POINTS`` = 478; each iris: centre first, then four points on its rim). MediaPipe's
"right" is the subject's right, as in ``f2p.conventions``: on MediaPipe's canonical face (cm, y up,
face towards +z, the same axes as f2p's model space) the right outer eye corner, mesh point 33, lies at
negative x.

``ibug68_view`` turns dense points (2-D pixels or 3-D positions) into the 68 iBUG points: the inner 51
from a published index table (``IBUG68_INNER``), the 17 jaw points resampled along the lower face oval
(``JAW_CONTOUR``), equally spaced by arc length in the coordinates given.
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p import conventions as C

NUM_MESH_POINTS = 468
NUM_IRIS_POINTS = 5
NUM_DENSE_POINTS = NUM_MESH_POINTS + 2 * NUM_IRIS_POINTS
RIGHT_IRIS = tuple(range(NUM_MESH_POINTS, NUM_MESH_POINTS + NUM_IRIS_POINTS))
"""Dense indices of the subject's right iris: centre (468), then its rim."""
LEFT_IRIS = tuple(range(NUM_MESH_POINTS + NUM_IRIS_POINTS, NUM_DENSE_POINTS))
"""Dense indices of the subject's left iris: centre (473), then its rim."""

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
"""MediaPipe's face-oval contour as a closed loop of mesh indices (the last joins the first): from the top
of the forehead (10) down the subject's left side to the chin (152) and up the right side. The edges of
``FACEMESH_FACE_OVAL`` in mediapipe/python/solutions/face_mesh_connections.py, chained in order."""

JAW_RIGHT_END = 127
"""Oval point that bounds the iBUG jaw on the subject's right (iBUG 0): at the top of the ear attachment,
a little below the outer eye corner. The endpoint of the jaw in the table cited at ``IBUG68_INNER``."""
JAW_LEFT_END = 356
"""Mirror partner of ``JAW_RIGHT_END``, the end of the iBUG jaw on the subject's left (iBUG 16)."""
CHIN_POINT = 152
"""The lowest oval point, on the mid-line (menton)."""

_LEFT_START, _RIGHT_STOP = FACE_OVAL.index(JAW_LEFT_END), FACE_OVAL.index(JAW_RIGHT_END)
JAW_CONTOUR = tuple(reversed(FACE_OVAL[_LEFT_START:_RIGHT_STOP + 1]))
"""The lower part of ``FACE_OVAL`` as an open path in iBUG jaw order: from ``JAW_RIGHT_END`` through
``CHIN_POINT`` to ``JAW_LEFT_END`` (23 mesh points)."""

IBUG68_INNER: tuple[tuple[int, ...], ...] = (
    (70,), (63,), (105,), (66,), (107,),  # 17-21 right brow
    (336,), (296,), (334,), (293,), (300,),  # 22-26 left brow
    (168, 6), (197, 195), (5,), (4,),  # 27-30 nose bridge
    (75,), (97,), (2,), (326,), (305,),  # 31-35 lower nose
    (33,), (160,), (158,), (133,), (153,), (144,),  # 36-41 right eye
    (362,), (385,), (387,), (263,), (373,), (380,),  # 42-47 left eye
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),  # 48-59 outer lips
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),  # 60-67 inner lips
)
"""For iBUG points 17..67 (``conventions.INNER_51``), the mesh point(s) whose mean is the iBUG point.
Source: Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,
mediapipe2dlib/mp2dlib.py, ``mp2dlib_correspondence``, 2024), rows 18..68. The table is left-right
symmetric under ``MIRROR_468`` and ``conventions.IBUG68_MIRROR``."""

MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 94, 151, 152, 164, 168, 175,
           195, 197, 199, 200)
"""The 28 mesh points on the face's mid-line (x = 0 on the canonical face), their own mirror partners."""


def _mirror_table() -> tuple[int, ...]:
    """MediaPipe numbers the subject's right-side points below 248 and their left partners 248..467 in the
    same order, so the k-th point off the mid-line mirrors to the (220 + k)-th (checked against the canonical
    face's exact x -> -x symmetry in tests/test_face_mesh.py)."""
    midline = set(MIDLINE)
    sided = [i for i in range(NUM_MESH_POINTS) if i not in midline]
    pairs = len(sided) // 2
    right, left = sided[:pairs], sided[pairs:]
    mirror = list(range(NUM_MESH_POINTS))
    for r, l in zip(right, left, strict=True):
        mirror[r], mirror[l] = l, r
    return tuple(mirror)


MIRROR_468 = _mirror_table()
"""Index of each mesh point's partner under a left-right flip of the face (an involution)."""

_INNER_PAIRS = torch.tensor([(entry[0], entry[-1]) for entry in IBUG68_INNER])  # (51, 2), singles doubled
_JAW_CONTOUR = torch.tensor(JAW_CONTOUR)


def resample_by_arc_length(polyline: Tensor, count: int) -> Tensor:
    """Points equally spaced by arc length along an open polyline, both ends included.

    Args:
        polyline: (..., N, D) vertices of the path, N >= 2.
        count: number of output points, >= 2.

    Returns:
        (..., count, D), the first equal to ``polyline[..., 0, :]`` and the last to ``polyline[..., -1, :]``.
    """
    N = polyline.shape[-2]
    if N < 2 or count < 2:
        raise ValueError(f"need a polyline of at least 2 points and count >= 2, got N={N}, count={count}")
    lengths = (polyline[..., 1:, :] - polyline[..., :-1, :]).norm(dim=-1)  # (..., N-1)
    arc = torch.cat([torch.zeros_like(lengths[..., :1]), lengths.cumsum(dim=-1)], dim=-1)  # (..., N)
    fractions = torch.linspace(0.0, 1.0, count, dtype=polyline.dtype, device=polyline.device)
    targets = fractions * arc[..., -1:]  # (..., count)
    # Segment of each target: how many interior breakpoints lie at or before it, in [0, N-2].
    segment = torch.searchsorted(arc[..., 1:-1].contiguous(), targets.contiguous(), right=True)
    start = arc.gather(-1, segment)
    length = lengths.gather(-1, segment)
    t = ((targets - start) / length.clamp_min(torch.finfo(polyline.dtype).tiny)).clamp(0.0, 1.0)
    index = segment[..., None].expand(*segment.shape, polyline.shape[-1])  # (..., count, D)
    a = polyline.gather(-2, index)
    b = polyline.gather(-2, index + 1)
    return a + t[..., None] * (b - a)


def ibug68_view(points: Tensor) -> Tensor:
    """The 68 iBUG points of dense face-mesh points.

    Inner points 17..67 are the means of the ``IBUG68_INNER`` mesh points; the 17 jaw points are spaced
    equally by arc length along ``JAW_CONTOUR`` in the coordinates given (so 2-D image points and 3-D
    positions of the same face give slightly different jaws), from ``JAW_RIGHT_END`` (iBUG 0) to
    ``JAW_LEFT_END`` (iBUG 16).

    Args:
        points: (..., 468 or 478, D) dense points, D = 2 or 3 (iris points, if present, are not used).

    Returns:
        (..., 68, D) iBUG-68 points.
    """
    *_, N, D = points.shape
    if N not in (NUM_MESH_POINTS, NUM_DENSE_POINTS) or D not in (2, 3):
        raise ValueError(f"points must have shape (..., {NUM_MESH_POINTS} or {NUM_DENSE_POINTS}, 2 or 3), "
                         f"got {tuple(points.shape)}")
    inner = points[..., _INNER_PAIRS.to(points.device), :].mean(dim=-2)  # (..., 51, D)
    jaw = resample_by_arc_length(points[..., _JAW_CONTOUR.to(points.device), :], len(C.JAW))  # (..., 17, D)
    return torch.cat([jaw, inner], dim=-2)
