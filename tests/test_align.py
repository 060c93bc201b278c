import math

import torch

from f2p.perception.align import apply_affine, invert_affine, similarity_transform, warp_image


def test_similarity_recovers_a_known_transform():
    src = torch.rand(2, 10, 2) * 100
    angle, scale = math.radians(20), 1.7
    linear = scale * torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = src @ linear.T + torch.tensor([5.0, -3.0])
    matrix = similarity_transform(src, dst)
    assert torch.allclose(matrix[:, :, :2], linear.expand(2, 2, 2), atol=1e-4)
    assert torch.allclose(apply_affine(invert_affine(matrix), dst), src, atol=1e-3)


def test_warp_moves_a_pixel_centre_exactly_in_the_f2p_convention():
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 5, 10] = 1.0  # x = 10, y = 5
    matrix = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 1.0]]])  # x -> 2x, y -> 2y + 1
    out = warp_image(image, matrix, (32, 32))
    assert abs(out[0, 0, 11, 20].item() - 1.0) < 1e-5  # (10, 5) -> (20, 11)
    assert abs(out[0, 0, 11, 19].item() - 0.5) < 1e-5  # half-way between source pixels
