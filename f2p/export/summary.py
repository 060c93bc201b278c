"""summary.csv: one row per input of a run (``reconstruct``, the fitting system, ``predict``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from f2p.atomic import atomic_writer
from f2p.export.diagnostics import is_doubtful
from f2p.export.photo import PhotoOutcome

SUMMARY_COLUMNS = ("image", "status", "error", "landmark_rmse_px", "residual_worst_face", "doubtful",
                   "identity_similarity", "seconds", "output")
"""``doubtful``: yes / no (``export.diagnostics.is_doubtful``), empty where the photo has no residuals."""


def summary_row(outcome: PhotoOutcome) -> dict[str, str]:
    """One summary.csv row."""
    m = outcome.metrics

    def fmt(key: str) -> str:
        value = m.get(key)
        return f"{value:.4f}" if isinstance(value, float) else ""

    doubtful = is_doubtful(m)
    return {"image": outcome.path, "status": outcome.status, "error": outcome.error,
            "landmark_rmse_px": fmt("landmark_rmse_px"), "residual_worst_face": fmt("residual_worst_face"),
            "doubtful": "" if doubtful is None else ("yes" if doubtful else "no"),
            "identity_similarity": fmt("identity_similarity"),
            "seconds": fmt("seconds"), "output": str(outcome.out_dir) if outcome.out_dir else ""}


def write_summary(path: Path, rows: list[dict[str, str]]) -> None:
    """Write summary.csv atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_writer(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
