"""The seam between the photo pipeline and whatever finds the parameters: an ``Estimator`` turns a batch of
observations into an ``Estimate``. Fitting (``FittingEstimator``, optionally started by an ``Initializer`` such as a
trained regressor's ``predict_params``) and one-pass prediction (``PredictionEstimator``) are both estimators;
the pipeline and the synthetic evaluation take any of them, built by the command that knows the options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from f2p.fitting.fitter import Fitter, OnStep
from f2p.scene.compose import SceneOutput
from f2p.scene.observations import Observations

Initializer = Callable[[Observations], dict[str, Tensor]]
"""Observations of B photos (crops, landmarks, dense landmarks) -> {group: (B, K)} parameters (a trained network,
``systems.landmark_weights.load_initializer``): where a fit starts, or the answer of a one-pass estimator."""


@dataclass(frozen=True)
class Estimate:
    """The parameters of a batch of B photos and what is known about how they were found.

    Attributes:
        params: {group: (B, K)} detached parameters in the crop's scene.
        errors: B one-line reasons, "" for the photos whose parameters can be used.
        metrics: B dicts of numbers for metrics.json (loss terms, retries, ...).
        scene: the final scene of ``params`` when the estimator made one (a fit's: a full-resolution render, or the
            projected landmarks alone when the fit rendered nothing), else None (the exporter then renders it as
            far as its outputs need).
    """

    params: dict[str, Tensor]
    errors: list[str]
    metrics: list[dict[str, float | int | str]]
    scene: SceneOutput | None = None

    @property
    def failed(self) -> Tensor:
        """(B,) bool: photos whose estimate failed."""
        return torch.tensor([bool(error) for error in self.errors])


class Estimator(Protocol):
    """Observations of B photos -> their ``Estimate``."""

    method: str
    """How parameters are found, for metrics.json ("fitting", "regressor")."""
    steps: int
    """Optimisation steps per batch (0 for a one-pass estimator), for progress bars."""

    def __call__(self, obs: Observations, on_step: OnStep | None = None) -> Estimate:
        ...


class FittingEstimator:
    """Per-photo fitting with ``fitter``, from the mean face or from an ``initializer``'s parameters.

    Args:
        fitter: the staged optimiser.
        initializer: starting parameters from the crops and their landmarks, or None for the mean face placed over
            the landmarks.
    """

    method = "fitting"

    def __init__(self, fitter: Fitter, initializer: Initializer | None = None) -> None:
        self.fitter = fitter
        self.initializer = initializer
        self.steps = sum(stage.steps for stage in fitter.stages)

    def __call__(self, obs: Observations, on_step: OnStep | None = None) -> Estimate:
        init = None
        if self.initializer is not None:
            with torch.no_grad():
                init = self.initializer(obs)
        result = self.fitter.fit(obs, init=init, on_step=on_step)
        errors = [f"optimisation diverged (NaN or exploding loss) after {int(retries)} retries with smaller steps"
                  if failed else "" for failed, retries in zip(result.failed.tolist(), result.retries.tolist())]
        metrics = [{"steps": self.steps, "retries": int(result.retries[i]),
                    **{f"iterations_{stage}": int(count[i]) for stage, count in result.iterations.items()},
                    **{f"loss_{name}": float(value[i]) for name, value in result.losses.items()}}
                   for i in range(obs.batch_size)]
        return Estimate(result.params, errors, metrics, result.scene)


class PredictionEstimator:
    """One-pass prediction: ``predict`` (a trained regressor's ``predict_params``) gives the parameters.

    Args:
        predict: observations -> parameters.
        method: name for metrics.json.
    """

    steps = 0

    def __init__(self, predict: Initializer, method: str = "regressor") -> None:
        self.predict = predict
        self.method = method

    def __call__(self, obs: Observations, on_step: OnStep | None = None) -> Estimate:
        with torch.no_grad():
            params = self.predict(obs)
        return Estimate({name: value.detach() for name, value in params.items()}, [""] * obs.batch_size,
                        [{} for _ in range(obs.batch_size)])
