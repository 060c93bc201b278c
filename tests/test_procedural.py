import torch

from f2p import conventions as C


def test_procedural_landmarks_follow_the_conventions(procedural_model):
    mesh = procedural_model(**procedural_model.zero_params(1))
    lmk = mesh.landmarks[0]
    assert lmk[:, 2].argmax().item() == C.NOSE_TIP
    right, left = lmk[C.RIGHT_EYE_OUTER], lmk[C.LEFT_EYE_OUTER]
    assert right[0] < 0 < left[0]  # the subject's right is model -x
    assert torch.allclose(right * torch.tensor([-1.0, 1.0, 1.0]), left, atol=2e-3)


def test_procedural_jaw_open_moves_chin_down(procedural_model):
    params = procedural_model.zero_params(1)
    closed = procedural_model(**params).landmarks[0, C.CHIN, 1]
    params["expression"][0, procedural_model.groups["expression"].component_names.index("jawOpen")] = 1.0
    opened = procedural_model(**params).landmarks[0, C.CHIN, 1]
    assert opened < closed - 0.005


def test_landmark_fast_path_equals_the_full_mesh(procedural_model):
    params = procedural_model.zero_params(2)
    params["identity"] = torch.randn(2, procedural_model.groups["identity"].size)
    params["expression"] = torch.rand(2, procedural_model.groups["expression"].size)
    assert torch.allclose(procedural_model.landmarks(**params), procedural_model(**params).landmarks, atol=1e-6)
