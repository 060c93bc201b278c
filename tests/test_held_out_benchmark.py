"""benchmarks/held_out.py's protocol: a held-out region's points and the dense points nearest to them get no weight in
the fit; the other points keep theirs."""

from __future__ import annotations

import pytest
import torch

from benchmark_scripts import benchmark_script

from f2p.conventions import LANDMARK_REGIONS
from f2p.face_mesh import NUM_MESH_POINTS
from f2p.scene.observations import Observations


@pytest.fixture(scope="module")
def held_out():
    return benchmark_script("held_out")


def test_a_held_out_region_and_its_nearest_dense_points_get_no_weight(held_out) -> None:
    generator = torch.Generator().manual_seed(0)
    landmarks = torch.rand(2, 68, 2, generator=generator) * 200
    dense = torch.cat([landmarks[:, :34] + 0.5, torch.rand(2, NUM_MESH_POINTS - 34, 2, generator=generator) * 200], 1)
    obs = Observations(image=torch.zeros(2, 3, 8, 8), landmarks=landmarks, confidence=torch.ones(2, 68), dense=dense,
                       dense_confidence=torch.ones(2, NUM_MESH_POINTS))
    nose = list(LANDMARK_REGIONS["nose"])
    out = held_out.held_out_observations(obs, nose)
    others = [i for i in range(68) if i not in nose]
    assert (out.confidence[:, nose] == 0).all() and (out.confidence[:, others] == 1).all()
    nearest = torch.cdist(dense, landmarks).argmin(-1)
    in_nose = torch.isin(nearest, torch.tensor(nose))
    assert in_nose[:, :34].any() and (out.dense_confidence[in_nose] == 0).all()
    assert (out.dense_confidence[~in_nose] == 1).all()
    assert torch.equal(obs.confidence, torch.ones(2, 68))  # the observations themselves are left as they were
