import torch

from f2p import conventions as C


def test_mirror_table_is_an_involution_with_known_pairs():
    mirror = C.IBUG68_MIRROR
    assert len(mirror) == 68
    assert all(mirror[mirror[i]] == i for i in range(68))
    assert mirror[C.RIGHT_EYE_OUTER] == C.LEFT_EYE_OUTER
    assert mirror[C.MOUTH_RIGHT] == C.MOUTH_LEFT
    assert mirror[C.NOSE_TIP] == C.NOSE_TIP and mirror[C.CHIN] == C.CHIN


def test_model_to_opencv_flips_up_and_forward():
    up_model = torch.tensor([0.0, 1.0, 0.0])
    towards_viewer = torch.tensor([0.0, 0.0, 1.0])
    assert torch.equal(C.MODEL_TO_OPENCV @ up_model, torch.tensor([0.0, -1.0, 0.0]))  # up is -y (image up)
    assert torch.equal(C.MODEL_TO_OPENCV @ towards_viewer, torch.tensor([0.0, 0.0, -1.0]))  # towards the camera
    assert torch.det(C.MODEL_TO_OPENCV) == 1.0
