"""Differentiable alignment of faces to dlib's 150x150 face chip (``dlib.get_face_chip``), from 68 landmarks.

dlib's ``get_face_chip_details`` (dlib/image_transforms/interpolation.h) fits a similarity transform
from a mean face shape, placed in the chip with ``padding`` on each side, to 36 of the 68 landmarks
(eyebrows and lower lip excluded); ``extract_image_chips`` samples the rectangle this defines
(``dlib_chip_to_image``) bilinearly, after cropping and downsampling the image with its pyramid when
the face is more than about twice the chip's size. All of it is reproduced here, differentiably,
with the shared ``similarity_transform`` and ``warp_image``; pixels sampled outside the image are
black, as in dlib. Not reproduced: dlib truncates the pyramid levels and the chip to 8 bits, so
its chips are on average 0.5 (no pyramid) to 1 (pyramid) grey level darker.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.perception.align import invert_affine, similarity_transform, warp_image

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25

# dlib's mean face shape: landmarks 17..67 in the unit square (get_face_chip_details).
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)  # fmt: skip
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)  # fmt: skip
_MEAN_FACE_FIRST = 17
_PYRAMID_SHIFT = (1.25, 0.75)  # dlib pyramid_down<2>::point_down(p) = p / 2 - (1.25, 0.75)

DLIB_ALIGNMENT_LANDMARKS = tuple(
    i for i in range(_MEAN_FACE_FIRST, NUM_LANDMARKS) if not (i <= 26 or 55 <= i <= 59 or 65 <= i <= 67)
)
"""The 36 iBUG-68 indices dlib aligns with: everything from 17 on except eyebrows (17-26) and lower lip."""


def dlib_chip_template(size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> Tensor:
    """(36, 2) positions of ``DLIB_ALIGNMENT_LANDMARKS`` in dlib's chip frame (mean face with padding, times size)."""
    index = torch.tensor(DLIB_ALIGNMENT_LANDMARKS) - _MEAN_FACE_FIRST
    unit = torch.tensor([_MEAN_FACE_X, _MEAN_FACE_Y], dtype=torch.float64).T[index]  # (36, 2)
    return ((padding + unit) / (2 * padding + 1) * size).float()


def dlib_chip_to_image(landmarks: Tensor, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> Tensor:
    """(B, 68, 2) landmarks (f2p pixels) -> (B, 2, 3) affine matrices mapping chip pixels to image pixels.

    As dlib: the similarity ``T = A q + t`` (scale ``s``) is fitted chip -> image (a least-squares fit is
    not symmetric); the chip is the rectangle of width ``size * s`` centred on ``T(size / 2)``, whose
    corner pixel centres, ``size * s - 1`` apart (dlib rectangles count both ends), are chip pixels
    0 and ``size - 1``.
    """
    B, L, _ = landmarks.shape
    if L != NUM_LANDMARKS:
        raise ValueError(f"expected (B, {NUM_LANDMARKS}, 2) landmarks, got {tuple(landmarks.shape)}")
    template = dlib_chip_template(size, padding).to(landmarks)  # (36, 2)
    fit = similarity_transform(template.expand(B, -1, -1), landmarks[:, DLIB_ALIGNMENT_LANDMARKS])
    A, t = fit[:, :, :2], fit[:, :, 2]  # (B, 2, 2), (B, 2)
    scale = torch.linalg.vector_norm(A[:, :, 0], dim=1)  # (B,) image pixels per template unit
    step = (size * scale - 1.0) / (size - 1)  # image pixels per chip pixel
    linear = A * (step / scale)[:, None, None]
    centre = A.sum(-1) * (size / 2) + t  # T((size/2, size/2))
    offset = centre - linear.sum(-1) * ((size - 1) / 2)  # chip pixel (size-1)/2 lands on the centre
    return torch.cat([linear, offset[..., None]], dim=2)


def pyramid_down(images: Tensor) -> Tensor:
    """dlib ``pyramid_down<2>``: (B, C, H, W) -> (B, C, (H - 3) // 2, (W - 3) // 2).

    A 5x5 binomial blur ([1 4 6 4 1] outer itself, / 256) sampled at every other pixel; output pixel
    (r, c) is centred on input pixel (2r + 2, 2c + 2). dlib's 8-bit truncation is not reproduced.
    """
    B, C, H, W = images.shape
    taps = images.new_tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (taps[:, None] * taps[None, :] / 256.0).expand(C, 1, 5, 5)
    return F.conv2d(images, kernel, stride=2, groups=C)


def _translate(matrix: Tensor, offset: Tensor) -> Tensor:
    """(2, 3) affine matrix followed by a translation by (2,) ``offset``."""
    return torch.cat([matrix[:, :2], matrix[:, 2:] + offset[:, None]], dim=1)


def _pyramid_plan(
    chip_to_image: Tensor, size: int, image_size: tuple[int, int]
) -> tuple[int, tuple[int, int, int, int]]:
    """How dlib's ``extract_image_chips`` downsamples before sampling one chip.

    Args:
        chip_to_image: (2, 3) chip -> image matrix of one face.

    Returns:
        (levels, (left, top, right, bottom)): the number of ``pyramid_down`` steps (0 when the chip is
        at most about 2x smaller than the face) and the inclusive integer crop they run on.
    """
    H, W = image_size
    m = chip_to_image.detach().double()
    side = float(torch.linalg.vector_norm(m[:, 0])) * (size - 1) + 1  # dlib rectangle width of the chip
    levels, grow = 0, 2.0
    while (side := (side - 1) / 2 + 1) > size:  # pyramid rect_down keeps the corners: width - 1 halves
        levels, grow = levels + 1, grow * 2 + 2
    corners = m.new_tensor([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]) @ m[:, :2].T + m[:, 2]
    low = (corners.min(0).values - grow).clamp_min(0)
    high = torch.minimum(corners.max(0).values + grow, m.new_tensor([W - 1, H - 1]))
    left, top, right, bottom = (int(math.floor(float(v) + 0.5)) for v in (*low, *high))
    return levels, (left, top, right, bottom)


def extract_dlib_face_chips(
    images: Tensor, landmarks: Tensor, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING
) -> Tensor:
    """Differentiable ``dlib.get_face_chip``: (B, 3, H, W) images and (B, 68, 2) landmarks -> (B, 3, size, size).

    Bilinear sampling of the chip rectangle; where the face is more than about twice the chip's size,
    the image is first cropped and downsampled with dlib's pyramid, as ``extract_image_chips`` does.
    """
    B, C, H, W = images.shape
    chips = []
    for image, chip_to_image in zip(images, dlib_chip_to_image(landmarks, size, padding)):
        levels, (left, top, right, bottom) = _pyramid_plan(chip_to_image, size, (H, W))
        source, chip_to_source = image[None], chip_to_image
        if levels:
            source = source[:, :, top : bottom + 1, left : right + 1]
            chip_to_source = _translate(chip_to_image, chip_to_image.new_tensor([-left, -top]))
            for _ in range(levels):
                # dlib maps a point one level down to p / 2 - (1.25, 0.75) although the level's pixel c is
                # centred on input pixel 2c + 2: kept, so that chips match dlib's.
                source = pyramid_down(source)
                chip_to_source = _translate(chip_to_source / 2, -chip_to_source.new_tensor(_PYRAMID_SHIFT))
        chips.append(warp_image(source, invert_affine(chip_to_source[None]), (size, size), padding_mode="zeros"))
    return torch.cat(chips)  # (B, C, size, size)
