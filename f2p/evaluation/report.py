"""report.json, report.csv and the tables printed by ``python -m f2p evaluate``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from f2p.atomic import atomic_writer
from f2p.evaluation.synthetic import VERTEX_SPACES

REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"
FAILURE_RULE = ("a failed photo counts in CED and AUC as an error above every threshold (so it lowers the curve) and "
                "is left out of mean NME")
"""How failures count (``summary.landmark_summary``), stated in the console tables and the CED figure alike."""


def _clean(value: object) -> object:
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_report(out_dir: Path, summary: dict, records: list[dict], fields: Sequence[str]) -> None:
    """Write ``out_dir``/report.json ({"summary", "items"}) and report.csv (one row per item, ``fields`` columns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out_dir / REPORT_JSON) as handle:
        handle.write(json.dumps(_clean({"summary": summary, "items": records}), indent=2).encode("utf-8"))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)
                         for k, v in record.items()})
    with atomic_writer(out_dir / REPORT_CSV) as handle:
        handle.write(text.getvalue().encode("utf-8"))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def number(stats: dict | None, key: str = "mean", scale: float = 1.0, digits: int = 2) -> str:
    """``stats[key] * scale`` formatted, or "-" when missing."""
    value = None if stats is None else stats.get(key)
    return "-" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def _landmark_rows(groups: dict[str, dict]) -> list[list[object]]:
    return [[name, s["count"], s["failed"], number(s["nme68_box"], scale=100), number(s["nme51_box"], scale=100),
             number(s["nme68_eyes"], scale=100), number(s["nme51_eyes"], scale=100),
             number(s["ced_box"], "auc", digits=3), number(s.get("detected_nme68_box"), scale=100),
             number(s.get("detected_nme51_box"), scale=100)] for name, s in groups.items()]


LANDMARK_HEADER = ("photos", "failed", "NME68 box %", "NME51 box %", "NME68 eyes %", "NME51 eyes %",
                   "AUC@7% box", "detector NME68 box %", "detector NME51 box %")
"""Columns of the landmark tables after the first (group or family)."""


def photo_tables(summary: dict) -> str:
    """The printed report of a photo evaluation (``photos.evaluate_photos`` summary)."""
    counts = summary["counts"]
    parts = [f"{counts['photos']} photos ({counts['ok']} ok, {counts['failed']} failed), "
             f"{counts['with_annotation']} with annotations ({counts['landmarks_68']} with 68 points, "
             f"{counts['landmarks_5']} with 5 points); {counts['annotations_without_output']} annotations had no photo"]
    if summary["landmarks"]:
        parts += ["", "Landmarks: NME normalised by sqrt(w*h) of the annotated 68-point box (box) or the "
                      f"outer-eye-corner distance (eyes); {FAILURE_RULE}",
                  table(("markup", *LANDMARK_HEADER), _landmark_rows(summary["landmarks"])),
                  "", table(("source family", *LANDMARK_HEADER), _landmark_rows(summary["families"]))]
        for name, target in summary["targets"].items():
            parts.append(f"target {name}: mean NME68 box {number(target, 'value', 100)} % "
                         f"(<= {target['target'] * 100:g} %: {'met' if target['met'] else 'NOT met'})")
    three_d = summary["landmarks"].get("3d-contour", {})
    if "nme68_box_reannotated" in three_d:
        s = three_d["nme68_box_reannotated"]
        parts.append(f"AFLW2000-3D against 3DDFA's re-annotation: NME68 box {number(s, scale=100)} % ({s['n']} photos)")
    bins = summary.get("aflw2000_yaw_bins")
    if bins:
        text = ", ".join(f"|yaw| {name}: {number(s, scale=100)} % ({s['n']})" for name, s in bins["bins"].items())
        balanced = number(bins, "balanced_mean", 100)
        parts.append(f"AFLW2000-3D yaw bins (NME68 box): {text}; balanced mean over the bins {balanced} %")
    five = summary.get("five_point")
    if five:
        parts.append(f"5-point annotations: NME5 (eye-centre distance) {number(five['nme5_eyes'], scale=100)} % over "
                     f"{five['nme5_eyes']['n']} photos, {five['failed']} failed")
    pose = summary.get("pose")
    if pose:
        errors = ", ".join(f"{a} {number(pose[f'{a}_error_deg'])}" for a in ("yaw", "pitch", "roll"))
        parts += ["", f"Head pose against AFLW2000-3D ({pose['photos']} photos), mean absolute error in degrees: "
                      f"{errors}; rotation angle {number(pose['pose_error_deg'])}"]
    identity = summary.get("identity")
    if identity:
        if "note" in identity:
            parts.append(f"Identity ({identity['photos']} labelled photos): {identity['note']}")
        else:
            parts.append(f"Identity ({identity['photos']} labelled photos, {identity['persons']} persons): cosine of "
                         f"fitted identity coefficients, same person {identity['same_mean']:.3f} "
                         f"({identity['same_pairs']} pairs) vs different {identity['different_mean']:.3f} "
                         f"({identity['different_pairs']} pairs); P(same > different) = {identity['separation']:.2f}")
    if summary["failures"]:
        parts += ["", f"Failures ({len(summary['failures'])}):"]
        parts += [f"  {Path(f['image']).name}: {f['error']}" for f in summary["failures"]]
    return "\n".join(parts)


def synthetic_tables(summary: dict) -> str:
    """The printed report of a synthetic evaluation (``synthetic.evaluate_synthetic`` summary)."""
    settings, counts = summary["settings"], summary["counts"]
    parts = [f"{counts['faces']} synthetic faces of {settings['model']} at {settings['image_size'][0]} px "
             f"({counts['ok']} ok, {counts['failed']} failed), yaw up to +-{settings['yaw_limit_deg']:g} deg, "
             f"{'68 and 468 dense' if settings.get('dense_landmarks') else '68'} landmarks observed with "
             f"{settings['landmark_noise_px']:g} px noise"
             f"{', outline on the silhouette' if settings.get('outline') == 'silhouette' else ''}, seed "
             f"{settings['seed']}; {settings['method']}", ""]
    rows = []
    for space, (_, label) in VERTEX_SPACES.items():
        for per_face in ("median", "mean"):
            stats = summary["vertex_error_mm"][space][f"{per_face}_per_face"]
            rows.append([f"vertex error {label}, per-face {per_face} (mm)",
                         *(number(stats, k) for k in ("median", "mean", "max"))])
    for key, label in (("parameters_rmse_std", "prior std"), ("parameters_rmse_shape", "prior std, shape-weighted")):
        for name, stats in summary[key].items():
            if stats["n"] == 0:  # shape-weighted error of a group that does not move the face (albedo)
                continue
            rows.append([f"{name} RMSE ({label})", *(number(stats, k, digits=3) for k in ("median", "mean", "max"))])
    for name, stats in summary.get("slider_pairs", {}).items():  # how lopsided the sliders are, fitted and true
        for key, label in (("lr_diff", "L/R difference"), ("overlap", "opposing-pair overlap")):
            for suffix, which in (("", "fitted"), ("_true", "true")):
                rows.append([f"{name} {label}, {which}",
                             *(number(stats[key + suffix], k, digits=3) for k in ("median", "mean", "max"))])
    for name, stats in summary["pose_error_deg"].items():
        rows.append([f"{name} error (deg)", number(stats, "median"), number(stats, "mean"), number(stats, "max")])
    rows.append(["translation error (mm)", *(number(summary["translation_error_mm"], k) for k in
                                               ("median", "mean", "max"))])
    landmarks = summary["landmarks"]
    for metric in ("nme68_box", "nme51_box", "nme68_eyes", "nme51_eyes"):
        rows.append([f"{metric} (%)", *(number(landmarks[metric], k, 100) for k in ("median", "mean", "max"))])
    rows.append(["seconds per face", *(number(summary["seconds_per_face"], k) for k in ("median", "mean", "max"))])
    parts.append(table(("metric (statistics over faces)", "median", "mean", "max"), rows))
    parts.append("")
    for name, target in summary["targets"].items():
        parts.append(f"target {name}: {number(target, 'value')} mm (<= {target['target_mm']:g} mm: "
                     f"{'met' if target['met'] else 'NOT met'})")
    if summary["failures"]:
        parts += ["", f"Failures ({len(summary['failures'])}):"]
        parts += [f"  {f['face']}: {f['error']}" for f in summary["failures"]]
    return "\n".join(parts)
