"""The run-level outputs shared by ``reconstruct`` and the fitting system: one folder per photo and summary.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from f2p.export.photo import PhotoOutcome
from f2p.export.results import DONE_MARKER
from f2p.morphable.atomic import atomic_writer

SUMMARY_COLUMNS = ("image", "status", "error", "landmark_rmse_px", "identity_similarity", "seconds", "output")


def output_dirs(images: list[Path], out: Path) -> dict[Path, Path]:
    """One output folder per photo, named by its stem; clashing stems get their parent folder's name added."""
    stems: dict[str, int] = {}
    for image in images:
        stems[image.stem] = stems.get(image.stem, 0) + 1
    return {image: out / (image.stem if stems[image.stem] == 1 else f"{image.parent.name}_{image.stem}")
            for image in images}


def completed(image: Path, out_dir: Path) -> PhotoOutcome | None:
    """The outcome of a photo whose outputs are complete (its ``metrics.json`` exists), else None."""
    done = out_dir / DONE_MARKER
    if not done.is_file():
        return None
    return PhotoOutcome(str(image), "ok", "", json.loads(done.read_text()))


def summary_row(outcome: PhotoOutcome, out_dir: Path | None) -> dict[str, str]:
    """One summary.csv row (``out_dir`` None for a failed photo)."""
    m = outcome.metrics

    def fmt(key: str) -> str:
        value = m.get(key)
        return f"{value:.4f}" if isinstance(value, float) else ""

    return {"image": outcome.path, "status": outcome.status, "error": outcome.error,
            "landmark_rmse_px": fmt("landmark_rmse_px"), "identity_similarity": fmt("identity_similarity"),
            "seconds": fmt("seconds"), "output": str(out_dir) if out_dir else ""}


def write_summary(path: Path, rows: list[dict[str, str]]) -> None:
    """Write summary.csv atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_writer(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
