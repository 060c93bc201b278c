"""MediaPipe's face-mesh topology as f2p's dense-landmark convention, and its iBUG-68 view.

Dense landmarks are MediaPipe Face Mesh points in MediaPipe's order: 468 mesh points
(``NUM_MESH_POINTS``), optionally followed by 5 points of the subject's right iris and 5 of the left
(``NUM_DENSE_POINTS`` = 478; each iris: centre first, then four points on its rim). MediaPipe's
"right" is the subject's right, as in ``f2p.conventions``: on MediaPipe's canonical face (cm, y up,
face towards +z, the same axes as f2p's model space) the right outer eye corner, mesh point 33, lies at
negative x.

``ibug68_view`` turns dense points (2-D pixels or 3-D positions) into the 68 iBUG points, each the mean of one
or two mesh points of a published index table (``IBUG68_JAW`` for the 17 jaw points, ``IBUG68_INNER`` for the
inner 51). The view is linear in the points, so it is the same for 3-D positions and for their 2-D images under an
affine camera.
"""

from __future__ import annotations

import torch
from torch import Tensor


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

IBUG68_JAW: tuple[tuple[int, ...], ...] = (
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,),  # 0-7 right jaw, ear to chin
    (152,),  # 8 chin
    (400,), (379,), (365,), (397, 288), (288, 361), (323,), (454,), (356,),  # 9-16 left jaw, chin to ear
)
"""For iBUG points 0..16 (``conventions.JAW``), the face-oval point(s) whose mean is the iBUG point: fixed points
of the mesh, so the chin (iBUG 8) stays on the menton (152) of a turned face. Source: the table cited at
``IBUG68_INNER``, rows 1..17, with row 14 (iBUG 13) made the mirror image of row 4 (iBUG 3): (288, 361) for the
published (361,), so that the view stays left-right symmetric. Measured on the 10 shared photos with 68 annotated
points, against the arc-length spacing along the same oval used before: mean error of the 17 jaw points 6.5 %
instead of 8.6 % of the box on visible-contour markup (6 faces), 8.8 % instead of 9.9 % on 3D-consistent markup
(4 faces), chin error 1-11 % instead of 1-28 %; NME68 (benchmarks/landmarks.py) 3.94 % instead of 4.45 % and
4.29 % instead of 4.58 %. The published row 14 and the single-index variant (132, 58, ..., 288, 361) measured 0.2
and 0.8 points worse on the visible-contour jaws."""

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
symmetric under ``MIRROR_468`` and ``conventions.IBUG68_MIRROR``.

The brows are MediaPipe's upper brow contour (``FACEMESH_RIGHT_EYEBROW`` 70-63-105-66-107 and its mirror), the
edge the iBUG markup follows. Checked on the shared photos: each of these ten points is the mesh point nearest
its annotation on most of the 10 faces with 68 points, and moving them towards the lower brow contour
(46-53-52-65-55) does not help overall (brow error 5.5 % of the box on visible-contour markup for the upper
contour, 5.8 % a quarter of the way down, 7.1 % on the lower contour; 4.5, 4.4 and 5.7 % on 3D-consistent
markup). What is left is the spread of the markup itself: its brows lie from 8 % of the box above to 4 % below
the upper contour, photo by photo."""

IBUG68_TABLE = IBUG68_JAW + IBUG68_INNER
"""The mesh point(s) of each of the 68 iBUG points, in iBUG order."""

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

_IBUG68_PAIRS = torch.tensor([(entry[0], entry[-1]) for entry in IBUG68_TABLE])  # (68, 2), singles doubled


def ibug68_view(points: Tensor) -> Tensor:
    """The 68 iBUG points of dense face-mesh points.

    Each is the mean of its ``IBUG68_TABLE`` mesh points (``IBUG68_JAW`` for 0..16, ``IBUG68_INNER`` for 17..67).

    Args:
        points: (..., 468 or 478, D) dense points, D = 2 or 3 (iris points, if present, are not used).

    Returns:
        (..., 68, D) iBUG-68 points.
    """
    *_, N, D = points.shape
    if N not in (NUM_MESH_POINTS, NUM_DENSE_POINTS) or D not in (2, 3):
        raise ValueError(f"points must have shape (..., {NUM_MESH_POINTS} or {NUM_DENSE_POINTS}, 2 or 3), "
                         f"got {tuple(points.shape)}")
    pairs = points[..., _IBUG68_PAIRS.to(points.device), :]  # (..., 68, 2, D): a single mesh point twice
    return pairs.mean(dim=-2)
