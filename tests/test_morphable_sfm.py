"""Surrey Face Model read with eos-py from the shared eos share/ files."""

from __future__ import annotations

import shutil
from pathlib import Path

import eos
import numpy as np
import pytest
import torch

from f2p import conventions as C
from f2p.morphable import sfm
from f2p.morphable.base import LinearMorphableModel, ModelFileError



@pytest.fixture(scope="module")
def sfm_folder(models_dir: Path) -> Path:
    folder = models_dir / "sfm_3448"
    if not (folder / sfm.SHAPE_FILE).is_file():
        pytest.skip(f"Surrey Face Model not found in {folder}")
    return folder


@pytest.fixture(scope="module")
def sfm_model(sfm_folder: Path) -> LinearMorphableModel:
    return LinearMorphableModel(sfm.load_sfm(sfm_folder))


@pytest.fixture
def sfm_copy(sfm_folder: Path, tmp_path: Path) -> Path:
    for name in sfm.FILES:
        shutil.copy(sfm_folder / name, tmp_path / name)
    return tmp_path


def landmarks(model: LinearMorphableModel, **params: torch.Tensor) -> torch.Tensor:
    full = model.zero_params(1)
    full.update(params)
    return model(**full).landmarks[0]


def test_sfm_shapes_units_and_groups(sfm_model):
    assert sfm_model.num_vertices == 3448 and tuple(sfm_model.faces.shape) == (6736, 3)
    identity, expression = sfm_model.groups["identity"], sfm_model.groups["expression"]
    assert identity.size == 63 and not identity.bounded
    assert expression.component_names == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert set(expression.lower) == {0.0} and set(expression.upper) == {1.0}
    width = (sfm_model.mean[:, 0].max() - sfm_model.mean[:, 0].min()).item()
    assert 0.12 < width < 0.25, width  # metres, not mm
    assert sfm_model.uv.shape == (3448, 2) and sfm_model.state_dict() == {}
    assert "non-commercial" in sfm_model.metadata["license"]


def test_sfm_identity_coefficients_are_standard_normal(sfm_model, sfm_folder):
    """basis = orthonormal * sqrt(eigenvalue): one unit of component k moves the mesh by sqrt(eig_k) mm (norm)."""
    eigenvalues = np.asarray(eos.morphablemodel.load_model(str(sfm_folder / sfm.SHAPE_FILE))
                             .get_shape_model().get_eigenvalues())
    norms = sfm_model.basis("identity").flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(norms, np.sqrt(eigenvalues) * C.M_PER_MM, rtol=1e-4)


def test_sfm_landmarks_follow_the_conventions(sfm_model):
    lmk = landmarks(sfm_model)
    assert lmk[:, 2].argmax().item() == C.NOSE_TIP
    right, left = lmk[C.RIGHT_EYE_OUTER], lmk[C.LEFT_EYE_OUTER]
    assert right[0] < 0 < left[0]
    assert torch.allclose(right * torch.tensor([-1.0, 1.0, 1.0]), left, atol=3 * C.M_PER_MM)
    jaw = lmk[list(C.JAW)]
    assert (jaw[:, 0].diff() > 0).all(), jaw[:, 0]  # subject's right (-x) to left (+x)
    # the jaw starts at eye height
    assert abs(jaw[0, 1] - right[1]) < 2 * C.M_PER_MM and abs(jaw[16, 1] - left[1]) < 2 * C.M_PER_MM
    steps = jaw[:9].diff(dim=0).norm(dim=1)
    assert steps.max() < 1.2 * steps.min(), steps  # evenly spread along the contour
    for corner, outer in ((60, C.MOUTH_RIGHT), (64, C.MOUTH_LEFT)):  # inner corners inside the outer ones
        assert 0 < lmk[corner, 0] / lmk[outer, 0] < 1


def test_sfm_exact_and_approximate_landmarks(sfm_model, sfm_folder):
    mapping = eos.core.LandmarkMapper(str(sfm_folder / sfm.MAPPING_FILE))
    lmk = landmarks(sfm_model)
    approximated = sorted(set(C.JAW) - {C.CHIN} | {60, 64})
    for point in range(68):
        vertex = mapping.convert(str(point + 1))
        assert (vertex is None) == (point in approximated), point
        if vertex is not None:
            assert torch.equal(lmk[point], sfm_model.mean[int(vertex)])
    confidence = sfm_model.landmark_confidence
    assert (confidence[approximated] == sfm.APPROXIMATE_CONFIDENCE).all()
    assert confidence.sum() == 68 - len(approximated) * (1 - sfm.APPROXIMATE_CONFIDENCE)


def test_sfm_surprise_opens_the_jaw(sfm_model):
    surprise = torch.zeros(1, 6)
    surprise[0, 5] = 1.0
    assert landmarks(sfm_model, expression=surprise)[C.CHIN, 1] < landmarks(sfm_model)[C.CHIN, 1] - 0.01


def test_sfm_gradients_reach_identity_and_expression(sfm_model):
    params = {k: torch.rand_like(v).requires_grad_() for k, v in sfm_model.zero_params(2).items()}
    sfm_model(**params).landmarks.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_corrupt_sfm_shape_file_names_the_file(sfm_copy):
    (sfm_copy / sfm.SHAPE_FILE).write_bytes(b"not a cereal archive" * 10)
    with pytest.raises(ModelFileError, match=r"sfm_shape_3448\.bin: eos could not read it"):
        sfm.load_sfm(sfm_copy)


def test_truncated_blendshapes_name_the_file(sfm_copy):
    path = sfm_copy / sfm.BLENDSHAPES_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"expression_blendshapes_3448\.bin: eos could not read it"):
        sfm.load_sfm(sfm_copy)


def test_bad_or_missing_contours_name_the_file(sfm_copy):
    contours = sfm_copy / sfm.CONTOURS_FILE
    contours.write_text('{"model_contour": {"right_contour": [1, 2]}}')
    with pytest.raises(ModelFileError, match=r"sfm_model_contours\.json: not a valid eos model contour file"):
        sfm.load_sfm(sfm_copy)
    contours.unlink()
    with pytest.raises(ModelFileError, match=r"sfm_model_contours\.json: file not found"):
        sfm.load_sfm(sfm_copy)


def test_incomplete_or_bad_mapping_names_the_file(sfm_copy):
    mapping = sfm_copy / sfm.MAPPING_FILE
    mapping.write_text(mapping.read_text().replace("31 =   114", "# 31 unmapped"))
    with pytest.raises(ModelFileError, match=r"ibug_to_sfm\.txt: iBUG points \[31\] \(1-based\) are not mapped"):
        sfm.load_sfm(sfm_copy)
    mapping.write_text("[landmark_mappings]\n 9 = = 33\n")
    with pytest.raises(ModelFileError, match=r"ibug_to_sfm\.txt: not a valid eos landmark mapping"):
        sfm.load_sfm(sfm_copy)
