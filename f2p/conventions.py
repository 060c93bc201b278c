"""Frames, units, pixel and landmark conventions of f2p, written once.

Every module converts to these at its boundary (file I/O, third-party libraries) and nowhere else.

Images
    float tensors (B, 3, H, W), RGB (channel 0 is red), values in [0, 1].

Pixel coordinates
    x right, y down, 0-based; the centre of the top-left pixel is (0, 0) (OpenCV). A pixel (i, j)
    (row i, column j) covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. iBUG ``.pts`` files are 1-based
    and are shifted by -1 on read.

Model space
    metres, x towards the subject's left, y up, z towards the viewer (out of the face). Each source
    format converts its units on load (ICT: cm, FLAME: m, BFM 2009: micrometres, BFM front: dm, SFM: mm;
    ``M_PER_<unit>`` below); scores in millimetres convert with ``MM_PER_M``.

Camera
    OpenCV: x right, y down, z forward (into the scene). Intrinsics fx, fy, cx, cy in pixels;
    extrinsics R, t map world (= model space) to camera: ``X_cam = R @ X_world + t``.
    A pixel is ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy``. Any other convention
    (PyTorch3D's +X left, +Y up) lives inside one backend file.

Head pose
    An axis-angle rotation ``R_head`` applied in model space before the fixed model-to-OpenCV
    flip, so the full extrinsic rotation is ``R = MODEL_TO_OPENCV @ R_head``. Euler angles in
    degrees: yaw about model +y, pitch about model +x, roll about model +z, composed as
    ``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)``. Positive yaw moves the nose towards model +x:
    the subject turns to their left and the nose moves to the right of the image. Positive pitch
    moves the nose down (the subject looks down). Positive roll rotates model +x towards +y: the
    subject's left eye (image right) moves up, a counter-clockwise turn as seen in the image.

Landmarks
    iBUG 68-point markup, 0-based indices (nose tip = 30, outer eye corners = 36 and 45,
    chin = 8). "Right" means the subject's right, which is the image left in a frontal photo.

Shape letters in docstrings
    B batch, V vertices, F faces, L landmarks, H W image size, P flat parameter size,
    K components of a parameter group.
"""

from __future__ import annotations

import torch

NUM_LANDMARKS = 68

# iBUG 68 named indices (0-based).
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_LOWER = tuple(range(31, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
INNER_51 = tuple(range(17, 68))

LANDMARK_REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": JAW,
    "brows": RIGHT_BROW + LEFT_BROW,
    "eyes": RIGHT_EYE + LEFT_EYE,
    "nose": NOSE_BRIDGE + NOSE_LOWER,
    "mouth": OUTER_LIPS + INNER_LIPS,
}
"""The face regions of the iBUG-68 points that fit diagnostics report residuals for (each point in one region)."""

FACE_OUTLINE = JAW + LEFT_BROW[::-1] + RIGHT_BROW[::-1]
"""The face's outline: jaw from the image-left ear over the chin to the image-right ear, back over the brows
(face-region masks, the smooth colour field's domain)."""

CHIN = 8
NOSE_TIP = 30
RIGHT_EYE_OUTER = 36
RIGHT_EYE_INNER = 39
LEFT_EYE_INNER = 42
LEFT_EYE_OUTER = 45
MOUTH_RIGHT = 48
MOUTH_LEFT = 54

# Index of each landmark's mirror partner under a left-right flip of the face (iBUG 68).
IBUG68_MIRROR = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # lower nose
    45, 44, 43, 42, 47, 46,  # right eye -> left eye
    39, 38, 37, 36, 41, 40,  # left eye -> right eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)

# Fixed rotation from model space (y up, z towards viewer) to the OpenCV camera frame
# (y down, z forward): a half turn about x.
MODEL_TO_OPENCV = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])

# Units: model space is in metres; source formats convert on load (multiply by M_PER_<unit>), scores in
# millimetres convert on output (multiply by MM_PER_M).
M_PER_CM = 0.01
"""Metres in a centimetre (ICT, MediaPipe's canonical face)."""
M_PER_DM = 0.1
"""Metres in a decimetre (Deep3DFaceRecon's BFM front)."""
M_PER_MM = 0.001
"""Metres in a millimetre (SFM)."""
M_PER_UM = 1e-6
"""Metres in a micrometre (BFM 2009)."""
MM_PER_M = 1000.0
"""Millimetres in a metre: model-space lengths -> the millimetres evaluation reports and the regressor logs."""

PTS_OFFSET = -1.0
"""Added to coordinates read from iBUG ``.pts`` files (1-based) to get f2p pixels (0-based)."""
