"""Evaluation metrics against hand-computed values."""

import math

import pytest
import scipy.io
import torch

from f2p.conventions import MODEL_TO_OPENCV
from f2p.evaluation.geometry import rigid_align, similarity_align, vertex_errors
from f2p.evaluation.identity import compare_identities
from f2p.evaluation.landmarks import (area_under_curve, cumulative_error, eye_corner_distance, failure_rate,
                                      five_point_nme, landmark_nme)
from f2p.evaluation.outputs import PhotoOutput
from f2p.evaluation.photos import MARKUP_3D, MARKUP_VISIBLE, evaluate_photos, markup_of
from f2p.evaluation.pose import (aflw2000_head_rotation, euler_errors, geodesic_degrees, head_rotation_from_camera,
                                 wrap_degrees)
from f2p.evaluation.shape_weights import shape_variance, shape_weighted_rmse
from f2p.evaluation.summary import statistics
from f2p.evaluation.truth import GroundTruth
from f2p.morphable.registry import load_model
from f2p.perception.annotations import JAW_3D, JAW_VISIBLE, MARKUP_OTHER, Annotation
from f2p.render.rotations import euler_to_matrix, matrix_to_euler


def face_points() -> torch.Tensor:
    """(68, 2) points whose box is 40 x 10 px (sqrt(w*h) = 20) and whose outer eye corners are 30 px apart."""
    points = torch.full((68, 2), 20.0)
    points[:, 1] = 5.0
    points[0] = torch.tensor([0.0, 0.0])
    points[16] = torch.tensor([40.0, 10.0])
    points[36] = torch.tensor([5.0, 5.0])
    points[45] = torch.tensor([35.0, 5.0])
    return points


def test_nme_uses_the_box_and_the_eye_corner_normalisers():
    target = face_points()
    assert float(eye_corner_distance(target)) == pytest.approx(30.0)
    scores = landmark_nme(target + torch.tensor([3.0, 4.0]), target)  # every point 5 px off
    assert float(scores["nme68_box"]) == pytest.approx(5 / 20)
    assert float(scores["nme68_eyes"]) == pytest.approx(5 / 30)
    assert float(scores["nme51_box"]) == pytest.approx(5 / 20)


def test_the_51_point_score_ignores_the_jaw_but_keeps_the_68_point_box():
    target = face_points()
    prediction = target.clone()
    prediction[17:] += torch.tensor([3.0, 4.0])  # inner points 5 px off, jaw exact
    scores = landmark_nme(prediction[None], target[None])
    assert float(scores["nme51_box"][0]) == pytest.approx(5 / 20)
    assert float(scores["nme68_box"][0]) == pytest.approx(51 * 5 / 68 / 20)
    assert float(scores["nme51_eyes"][0]) == pytest.approx(5 / 30)


def test_five_point_nme_reduces_the_68_points_and_uses_the_eye_centre_distance():
    prediction = face_points()
    prediction[36:42] = torch.tensor([10.0, 5.0])  # right eye centre (10, 5)
    prediction[42:48] = torch.tensor([30.0, 5.0])  # left eye centre (30, 5): 20 px apart
    target = torch.stack([prediction[36], prediction[42], prediction[30], prediction[48], prediction[54]])
    assert float(five_point_nme(prediction[None], target[None])[0]) == pytest.approx(0.0)
    shifted = target + torch.tensor([0.0, 2.0])
    assert float(five_point_nme(prediction[None], shifted[None])[0]) == pytest.approx(2 / 20)


def test_cumulative_error_auc_and_failure_rate_count_failures_as_never_below():
    errors = torch.tensor([0.01, 0.03, math.inf, 0.05])
    curve = cumulative_error(errors, torch.tensor([0.0, 0.02, 0.04, 0.06]))
    assert curve.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75])
    # mean(max(0, 1 - e / 0.04)) = (0.75 + 0.25 + 0 + 0) / 4
    assert area_under_curve(errors, 0.04) == pytest.approx(0.25)
    fine = torch.linspace(0, 0.04, 40001)
    integral = torch.trapezoid(cumulative_error(errors, fine), fine) / 0.04
    assert float(integral) == pytest.approx(0.25, abs=1e-3)  # the closed form is the area under the CED
    assert failure_rate(errors, 0.04) == pytest.approx(0.5)


def test_statistics_skip_missing_values_and_take_the_middle_pair_for_the_median():
    stats = statistics([1.0, None, 2.0, math.inf, 3.0, 10.0, math.nan])
    assert stats == {"n": 4, "mean": 4.0, "median": 2.5, "max": 10.0}
    assert statistics([None]) == {"n": 0}


def test_rigid_alignment_recovers_a_known_rotation_and_translation():
    generator = torch.Generator().manual_seed(1)
    source = torch.randn(2, 50, 3, generator=generator, dtype=torch.float64)
    R = euler_to_matrix(torch.tensor([[30.0, -20.0, 10.0], [-80.0, 5.0, 170.0]], dtype=torch.float64))
    t = torch.tensor([[0.1, -0.2, 0.3], [1.0, 2.0, 3.0]], dtype=torch.float64)
    target = source @ R.transpose(1, 2) + t[:, None]
    R_found, t_found = rigid_align(source, target)
    assert torch.allclose(R_found, R, atol=1e-9) and torch.allclose(t_found, t, atol=1e-9)
    region = torch.ones(50, dtype=torch.bool)
    assert vertex_errors(source, target, region, align="rigid").max() < 1e-9
    assert vertex_errors(source, target, region).min() > 0.05


def test_similarity_alignment_recovers_a_scaled_face_that_rigid_alignment_cannot():
    generator = torch.Generator().manual_seed(2)
    source = torch.randn(2, 40, 3, generator=generator, dtype=torch.float64)
    R = euler_to_matrix(torch.tensor([[10.0, 40.0, -5.0], [0.0, -60.0, 20.0]], dtype=torch.float64))
    scale = torch.tensor([1.08, 0.9], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.1, 0.2], [-0.3, 0.0, 0.5]], dtype=torch.float64)
    target = scale[:, None, None] * source @ R.transpose(1, 2) + t[:, None]
    s_found, R_found, t_found = similarity_align(source, target)
    assert torch.allclose(s_found, scale, atol=1e-9) and torch.allclose(R_found, R, atol=1e-9)
    assert torch.allclose(t_found, t, atol=1e-9)
    region = torch.ones(40, dtype=torch.bool)
    assert vertex_errors(source, target, region, align="similarity").max() < 1e-9
    assert vertex_errors(source, target, region, align="rigid").median() > 0.03
    with pytest.raises(ValueError, match="align must be one of"):
        vertex_errors(source, target, region, align="affine")


def test_rigid_alignment_never_returns_a_reflection_and_errors_use_only_the_region():
    source = torch.randn(30, 3, dtype=torch.float64)
    R, _ = rigid_align(source, source * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))  # a mirror image
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)
    moved = source.clone()
    moved[:10] += 1.0
    region = torch.zeros(30, dtype=torch.bool)
    region[10:] = True
    assert vertex_errors(moved[None], source[None], region).abs().max() == 0


def test_shape_weighted_error_counts_a_component_by_how_far_it_moves_the_face(models_dir):
    model = load_model("ict")
    scales = {name: torch.tensor(group.prior_std).expand(group.size) for name, group in model.groups.items()
              if name in ("identity", "expression")}
    variance = shape_variance(model, scales)
    identity = variance["identity"]
    big, small = int(identity.argmax()), int(identity.argmin())
    assert identity[big] > 100 * identity[small]  # ICT: 2.7 mm vs 0.05 mm per standard deviation

    def moved_mm(k: int) -> float:  # mean squared face-region displacement of one std of identity k, as RMS mm
        params = model.zero_params(1)
        params["identity"][0, k] = scales["identity"][k]
        verts = model(**params).verts[0, model.face_region] - model(**model.zero_params(1)).verts[0, model.face_region]
        return float(verts.pow(2).sum(-1).mean().sqrt())

    assert math.sqrt(identity[big]) == pytest.approx(moved_mm(big), rel=1e-4)
    errors = {name: torch.zeros(1, len(scale)) for name, scale in scales.items()}
    assert float(shape_weighted_rmse(errors, variance)) == 0.0
    ones = {name: torch.ones(1, len(scale)) for name, scale in scales.items()}
    assert float(shape_weighted_rmse(ones, variance)) == pytest.approx(1.0)
    errors["identity"][0, big] = 1.0
    at_big = float(shape_weighted_rmse({"identity": errors["identity"]}, variance))
    errors["identity"][0] = 0.0
    errors["identity"][0, small] = 1.0
    at_small = float(shape_weighted_rmse({"identity": errors["identity"]}, variance))
    assert at_big > 10 * at_small  # the plain RMSE would count both alike


def test_pose_errors_wrap_around():
    assert wrap_degrees(torch.tensor([190.0, -190.0, 180.0, 359.0])).tolist() == [-170.0, 170.0, -180.0, -1.0]
    errors = euler_errors(torch.tensor([179.0, 10.0, -170.0]), torch.tensor([-179.0, 350.0, 170.0]))
    assert errors.tolist() == pytest.approx([2.0, 20.0, 20.0])
    about_y = euler_to_matrix(torch.tensor([30.0, 0.0, 0.0]))
    assert float(geodesic_degrees(about_y, torch.eye(3))) == pytest.approx(30.0, abs=1e-3)


def test_aflw2000_angles_map_to_the_negated_f2p_angles_for_single_rotations():
    for index, (pitch_yaw_roll, f2p_yaw_pitch_roll) in enumerate([((0.0, 30.0, 0.0), (-30.0, 0.0, 0.0)),
                                                                   ((20.0, 0.0, 0.0), (0.0, -20.0, 0.0)),
                                                                   ((0.0, 0.0, 10.0), (0.0, 0.0, -10.0))]):
        R = aflw2000_head_rotation(torch.tensor(pitch_yaw_roll))
        assert matrix_to_euler(R).tolist() == pytest.approx(f2p_yaw_pitch_roll, abs=1e-4), index
    # positive AFLW2000-3D yaw (image00475, +66 deg) turns the nose (model +z) to the image left (model -x)
    nose = aflw2000_head_rotation(torch.tensor([0.0, 66.0, 0.0])) @ torch.tensor([0.0, 0.0, 1.0])
    assert nose[0] < -0.9


def test_head_rotation_from_camera_undoes_the_model_to_opencv_flip():
    R_head = euler_to_matrix(torch.tensor([25.0, -10.0, 5.0]))
    assert torch.allclose(head_rotation_from_camera(MODEL_TO_OPENCV @ R_head), R_head, atol=1e-6)


def test_identity_comparison_of_same_and_different_people():
    vectors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    result = compare_identities(vectors, ["a", "a", "b", "b"])
    same = 0.9 / math.sqrt(0.82)  # both same-person pairs
    different = (0.0 + 0.1 / math.sqrt(0.82) + 0.1 / math.sqrt(0.82) + 0.18 / 0.82) / 4
    assert result.same_mean == pytest.approx(same, abs=1e-6)
    assert result.different_mean == pytest.approx(different, abs=1e-6)
    assert (result.same_pairs, result.different_pairs, result.separation) == (2, 4, 1.0)
    assert compare_identities(vectors[:2], ["a", "a"]) is None  # no different-person pair


def output(name: str, fitted: torch.Tensor | None, status: str = "ok", error: str = "",
           detected: torch.Tensor | None = None) -> PhotoOutput:
    detected = fitted if detected is None else detected
    return PhotoOutput(f"/photos/{name}", status, error, fitted=fitted, detected=detected,
                       head_rotation=None if fitted is None else torch.eye(3))


def test_photos_are_scored_per_markup_family_and_wrong_faces_fail():
    target = face_points()
    off = target + torch.tensor([0.3, 0.4])  # 0.5 px: NME 2.5 %
    truth = {name: GroundTruth(name, Annotation(target, torch.ones(68), family))
             for name, family in [("a.jpg", "aflw2000-3d"), ("b.jpg", "300w"), ("c.jpg", "300w"), ("d.jpg", "300w"),
                                  ("f.jpg", "300w")]}
    outputs = [output("a.jpg", target), output("b.jpg", off), output("c.jpg", target + 500.0),
               output("d.jpg", None, "failed", "no face found"), output("e.jpg", target),
               output("f.jpg", target + torch.tensor([40.0, 0.0]), detected=target)]  # right face, fit drifted away
    evaluation = evaluate_photos(outputs, truth)
    records = {r["image"].rsplit("/", 1)[1]: r for r in evaluation.records}
    assert records["c.jpg"]["status"] == "failed" and "another face" in records["c.jpg"]["error"]
    assert records["e.jpg"]["markup"] is None  # no annotation: listed, not scored
    landmarks = evaluation.summary["landmarks"]
    assert landmarks["3d-contour"]["count"] == 1 and landmarks["3d-contour"]["nme68_box"]["mean"] == 0.0
    assert records["f.jpg"]["status"] == "ok" and records["f.jpg"]["nme68_box"] == pytest.approx(40 / 20)
    visible = landmarks["visible-contour"]
    assert (visible["count"], visible["failed"]) == (4, 2)
    assert visible["nme68_box"] == pytest.approx({"n": 2, "mean": 1.0125, "median": 1.0125, "max": 2.0})
    assert visible["ced_box"]["auc"] == pytest.approx((1 - 0.025 / 0.07) / 4)  # failures and f.jpg count as zero
    assert landmarks["all-68"]["nme68_box"]["mean"] == pytest.approx((0.0 + 0.025 + 2.0) / 3)
    assert set(evaluation.summary["families"]) == {"aflw2000-3d", "300w"}
    assert [f["error"] for f in evaluation.summary["failures"]][1] == "no face found"
    assert evaluation.summary["counts"]["annotations_without_output"] == 0


def test_the_markup_follows_the_annotations_jaw_and_unknown_families_are_scored():
    target = face_points()
    annotations = {"a.jpg": Annotation(target, torch.ones(68), MARKUP_OTHER),
                   "b.jpg": Annotation(target, torch.ones(68), MARKUP_OTHER, jaw=JAW_3D),
                   "c.jpg": Annotation(target, torch.ones(68), "300w-lp", jaw=JAW_VISIBLE),
                   "d.jpg": Annotation(target, torch.ones(68), "300w-lp")}
    assert [markup_of(a) for a in annotations.values()] == [MARKUP_VISIBLE, MARKUP_3D, MARKUP_VISIBLE, MARKUP_3D]
    truth = {name: GroundTruth(name, annotation) for name, annotation in annotations.items()}
    summary = evaluate_photos([output(name, target) for name in truth], truth).summary
    assert summary["families"][MARKUP_OTHER]["count"] == 2 and summary["landmarks"]["all-68"]["count"] == 4


def test_aflw2000_pose_mapping_agrees_with_the_files_own_3d_landmarks(faces_dir, models_dir):
    """The rotation aligning the mean ICT landmarks with image00475's pt3d_68 (yaw ~66 deg) is the mapped pose."""
    from f2p.morphable.registry import load_model
    from f2p.perception.annotations import read_aflw2000_mat

    mat = faces_dir / "annotations_original" / "aflw2000_image00475.mat"
    pt3d = torch.tensor(scipy.io.loadmat(str(mat))["pt3d_68"], dtype=torch.float64).T  # (68, 3)
    observed = pt3d * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # image x, y down, depth away: OpenCV
    model = load_model(str(models_dir / "ict_facekit" / "ict_facekit_light_v1_skin14062.npz"))
    mean = model(**model.zero_params(1)).landmarks[0].double() @ MODEL_TO_OPENCV.double().T  # frontal, OpenCV

    def normalised(points: torch.Tensor) -> torch.Tensor:
        centred = points[17:] - points[17:].mean(0)  # inner points: the jaw is the least rigid part
        return centred / centred.norm()

    R, _ = rigid_align(normalised(mean), normalised(observed))
    R_head = MODEL_TO_OPENCV.double() @ R @ MODEL_TO_OPENCV.double()  # camera-frame rotation -> R_head
    mapped = aflw2000_head_rotation(torch.tensor(read_aflw2000_mat(mat).pose_deg, dtype=torch.float64))
    assert float(geodesic_degrees(R_head, mapped)) < 3.0
