"""summary.csv: one row per input of a run (``reconstruct``, the fitting system, ``predict``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from f2p.atomic import atomic_writer
from f2p.export.photo import PhotoOutcome

SUMMARY_COLUMNS = ("image", "status", "error", "landmark_rmse_px", "identity_similarity", "seconds", "output")


def summary_row(outcome: PhotoOutcome) -> dict[str, str]:
    """One summary.csv row."""
    m = outcome.metrics

    def fmt(key: str) -> str:
        value = m.get(key)
        return f"{value:.4f}" if isinstance(value, float) else ""

    return {"image": outcome.path, "status": outcome.status, "error": outcome.error,
            "landmark_rmse_px": fmt("landmark_rmse_px"), "identity_similarity": fmt("identity_similarity"),
            "seconds": fmt("seconds"), "output": str(outcome.out_dir) if outcome.out_dir else ""}


def write_summary(path: Path, rows: list[dict[str, str]]) -> None:
    """Write summary.csv atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_writer(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
