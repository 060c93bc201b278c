"""One run over photos into an output folder.

For each batch of inputs: photos whose results are already complete are skipped (resume), the others are loaded
and perceived (a ``PhotoLoader``: detection or landmark file, crop, mask), their parameters estimated by any
``Estimator`` (fitting, or a regressor's one-pass prediction), and each photo's outputs exported into its folder
(``export.photo``); a photo that fails at any step (unreadable, no face, implausible landmarks, a diverged fit, a
write error such as a full disk) fails alone with a one-line reason. ``summary.csv`` lists every input; under DDP
each rank processes its own share and rank 0 writes the summary of all ranks.

Resume: a photo is done when its folder's ``metrics.json`` (written last) is readable and records the same source
(absolute path and SHA-256 of the file, ``naming.source_record``) and the same ``settings`` (the options that
change results); anything else (no, empty or truncated metrics.json, another photo's results, other settings) is
redone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from f2p.export.photo import PhotoExporter, PhotoOutcome
from f2p.export.report_page import write_report_page
from f2p.face_mesh import NUM_MESH_POINTS
from f2p.export.results import DONE_MARKER
from f2p.export.summary import summary_row, write_summary
from f2p.fitting.estimate import Estimate, Estimator
from f2p.fitting.fitter import OnStep
from f2p.fitting.schedule import Stage
from f2p.naming import source_record
from f2p.perception.combined import dense_weight
from f2p.perception.identity.base import FaceEmbedder
from f2p.perception.photo import PhotoError, PhotoSample
from f2p.scene.observations import Observations

log = logging.getLogger("f2p")

Settings = dict[str, str | int | float | bool | None]
"""The options of a run that change its results (model, landmarks, steps, crop size, ...), kept in metrics.json."""
PhotoLoad = Callable[[Path], PhotoSample]
"""Photo file -> aligned sample, raising ``PhotoError`` (``perception.photo.PhotoLoader``)."""


def observations(samples: list[PhotoSample], embedder: FaceEmbedder | None, device: torch.device) -> Observations:
    """Stack samples into batched observations on ``device`` (embedding the crops when an embedder is given).

    Dense landmarks are observed when any sample has them; a sample without them gets zero confidence there."""
    crops = torch.stack([s.crop for s in samples]).to(device)
    landmarks = torch.stack([s.crop_landmarks for s in samples]).to(device)
    embedding = None
    if embedder is not None:
        with torch.no_grad():
            embedding = embedder.embed(crops, landmarks)
    dense = dense_confidence = weight = None
    if any(s.crop_dense is not None for s in samples):
        dense = torch.stack([torch.zeros(NUM_MESH_POINTS, 2) if s.crop_dense is None else s.crop_dense
                             for s in samples]).to(device)
        dense_confidence = torch.stack([torch.zeros(NUM_MESH_POINTS) if s.dense_confidence is None
                                        else s.dense_confidence for s in samples]).to(device)
        weight = torch.tensor([dense_weight(s.source) for s in samples], device=device)
    return Observations(image=crops, landmarks=landmarks,
                        confidence=torch.stack([s.confidence for s in samples]).to(device),
                        face_mask=torch.stack([s.face_mask for s in samples]).to(device), embedding=embedding,
                        dense=dense, dense_confidence=dense_confidence, dense_weight=weight)


def run_renders(stages: list[Stage], outputs: str, identity: bool) -> bool:
    """Whether a photo run renders at all: for its pictures (``outputs`` "all"), for the ``identity`` metric
    (embeddings of render and photo), or in a stage of its schedule ``stages``. A run that does not (``--quality
    fast`` or ``instant`` with ``--outputs data --no-identity``) needs no face-region masks and no final render
    (``Fitter``'s ``final_render``)."""
    return outputs == "all" or identity or any(stage.needs_render for stage in stages)


def completed(image: Path, out_dir: Path, settings: Settings) -> PhotoOutcome | None:
    """The outcome of a photo whose outputs in ``out_dir`` are complete and were made from this very photo with
    ``settings``, else None (see the module docstring)."""
    done = out_dir / DONE_MARKER
    if not done.is_file():
        return None
    try:
        metrics = json.loads(done.read_text())
        source = source_record(image)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(metrics, dict):
        return None
    if metrics.get("source") != source or metrics.get("settings") != settings:
        log.info("redoing %s: %s holds results of another photo or of other settings", image, out_dir)
        return None
    return PhotoOutcome(str(image), "ok", "", metrics, out_dir)


def outcome_line(outcome: PhotoOutcome) -> str:
    """One console line per photo: ``ok     name: landmark RMSE 1.23 px`` or ``FAILED path: reason``."""
    if outcome.status == "ok":
        return f"ok     {Path(outcome.path).name}: landmark RMSE {outcome.metrics['landmark_rmse_px']:.2f} px"
    return f"FAILED {outcome.path}: {outcome.error}"


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class PhotoRun:
    """The photos of one run, their outcomes and ``out_dir/summary.csv`` (see the module docstring).

    Args:
        out_dir: the run's output folder; photo ``name``'s outputs go to ``out_dir/name/``.
        exporter: renders, measures and writes one photo's parameters.
        embedder: identity network for the identity-similarity metric (and the estimator's identity term), or None.
        settings: the options that change results, recorded in metrics.json and compared on resume.
        order: inputs in the order summary.csv lists them (others follow, sorted by path); None sorts by path.
    """

    def __init__(self, out_dir: Path, exporter: PhotoExporter, embedder: FaceEmbedder | None = None,
                 settings: Settings | None = None, order: list[Path] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.exporter = exporter
        self.embedder = embedder
        self.settings = dict(settings or {})
        self.order = {str(path): i for i, path in enumerate(order or [])}
        self.rows: dict[str, dict[str, str]] = {}
        self.summary_error = ""
        """Why the last summary.csv write failed, "" when it succeeded."""
        self._pending: set[str] = set()

    def resume(self, paths: list[Path], names: list[str]) -> list[int]:
        """Record the photos whose outputs are complete; the indices of those still to do (``process`` does not
        check them again)."""
        todo = []
        for i, (path, name) in enumerate(zip(paths, names)):
            done = completed(path, self.out_dir / name, self.settings)
            if done is None:
                todo.append(i)
                self._pending.add(str(path))
            else:
                self._record(done)
        return todo

    def process(self, paths: list[Path], names: list[str], load: PhotoLoad, estimator: Estimator,
                on_step: OnStep | None = None) -> list[PhotoOutcome]:
        """Skip, load, estimate and export one batch of photos; their outcomes in input order.

        Args:
            paths: the photo files; names: their output folder names (``naming.output_names``).
            load: photo file -> sample.
            estimator: finds the parameters of the loaded photos, together.
            on_step: progress callback of the estimator.
        """
        outcomes: dict[int, PhotoOutcome] = {}
        samples, sample_names, positions = [], [], []
        for i, (path, name) in enumerate(zip(paths, names)):
            done = None if str(path) in self._pending else completed(path, self.out_dir / name, self.settings)
            if done is not None:
                outcomes[i] = self._record(done)
                continue
            try:
                samples.append(load(path))
            except PhotoError as error:
                outcomes[i] = self._record(PhotoOutcome(str(path), "failed", error.reason, {}))
                continue
            sample_names.append(name)
            positions.append(i)
        if samples:
            began = time.perf_counter()
            obs = observations(samples, self.embedder, self.exporter.spec.model.device)
            estimate = estimator(obs, on_step)
            seconds = (time.perf_counter() - began) / len(samples)
            exported = self.export(samples, sample_names, estimate, estimator.method, seconds, obs.embedding)
            outcomes.update(zip(positions, exported))
        if not _distributed():
            self.write_summary()
        return [outcomes[i] for i in range(len(paths))]

    @torch.no_grad()
    def export(self, samples: list[PhotoSample], names: list[str], estimate: Estimate, method: str, seconds: float,
               embeddings: Tensor | None = None) -> list[PhotoOutcome]:
        """Write the outputs of estimated photos and record their outcomes.

        Args:
            samples: the B photos; names: their output folder names.
            estimate: their parameters (``params`` {group: (B, K)}).
            method: how the parameters were found ("fitting", "regressor").
            seconds: estimation time per photo (the batch's time divided by its size).
            embeddings: (B, D) identity embeddings of the crops, or None to compute them (with an embedder).
        """
        if embeddings is None and self.embedder is not None:
            embeddings = observations(samples, self.embedder, self.exporter.spec.model.device).embedding
        rendered = self._render_embeddings(estimate, embeddings)
        outcomes = []
        for i, (sample, name) in enumerate(zip(samples, names)):
            if estimate.errors[i]:
                outcomes.append(self._record(PhotoOutcome(sample.path, "failed", estimate.errors[i], {})))
                continue
            params = {group: value[i:i + 1] for group, value in estimate.params.items()}
            scene = None if estimate.scene is None else estimate.scene.row(i)
            embedding = None if embeddings is None else embeddings[i:i + 1]
            render_embedding = rendered.get(i)
            try:
                source = source_record(sample.path) if Path(sample.path).is_file() else {"path": sample.path}
                metrics = {"method": method, "seconds": seconds, **estimate.metrics[i], "source": source,
                           "settings": self.settings}
                outcome = self.exporter.export(sample, params, self.out_dir / name, metrics, embedding, scene,
                                               render_embedding)
            except OSError as error:  # a full disk, a read-only folder: this photo fails, the run goes on
                outcome = PhotoOutcome(sample.path, "failed", f"cannot write its outputs: {_one_line(error)}", {})
            outcomes.append(self._record(outcome))
        return outcomes

    def _render_embeddings(self, estimate: Estimate, embeddings: Tensor | None) -> dict[int, Tensor]:
        """{photo: (1, D) embedding of its render} for the photos whose estimate succeeded, embedded as one batch
        when the estimate has its renders and the identity metric is measured; {} otherwise (the exporter embeds
        each render itself)."""
        ok = [i for i, error in enumerate(estimate.errors) if not error]
        if estimate.scene is None or estimate.scene.render is None or embeddings is None or \
                self.exporter.embedder is None or not ok:
            return {}
        scene = estimate.scene
        index = torch.tensor(ok, device=scene.landmarks2d.device)
        rendered = self.exporter.render_embeddings(scene.render.image[index], scene.landmarks2d[index])
        return {i: row[None] for i, row in zip(ok, rendered)}

    def finish(self) -> list[dict[str, str]]:
        """Gather every rank's rows, write summary.csv (global rank 0) and return all rows."""
        parts = [self.rows]
        if _distributed():
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, self.rows)
        merged = {path: row for part in parts for path, row in part.items()}
        if not _distributed() or dist.get_rank() == 0:
            self._write(merged)
        return self._sorted(merged)

    def write_summary(self) -> None:
        """summary.csv of the rows this process has so far."""
        self._write(self.rows)

    def _write(self, rows: dict[str, dict[str, str]]) -> None:
        """Write summary.csv and the results page (``export.report_page``); a write error is logged (one line) and
        remembered in ``summary_error``."""
        ordered = self._sorted(rows)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_summary(self.out_dir / "summary.csv", ordered)
            write_report_page(self.out_dir, ordered)
            self.summary_error = ""
        except OSError as error:
            self.summary_error = f"cannot write the summary of {self.out_dir}: {_one_line(error)}"
            log.error("%s", self.summary_error)

    def _sorted(self, rows: dict[str, dict[str, str]]) -> list[dict[str, str]]:
        last = len(self.order)
        return [rows[path] for path in sorted(rows, key=lambda p: (self.order.get(p, last), p))]

    def _record(self, outcome: PhotoOutcome) -> PhotoOutcome:
        self.rows[outcome.path] = summary_row(outcome)
        return outcome


def _one_line(error: OSError) -> str:
    """An OS error as one line: its message and file, without the traceback."""
    detail = error.strerror or str(error)
    return f"{detail} ({error.filename})" if error.filename else detail
