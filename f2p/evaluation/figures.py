"""Evaluation figures (matplotlib, no display needed): cumulative error curves, per-item error bars and a contact
sheet of the worst fits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from f2p.evaluation.landmarks import cumulative_error
from f2p.evaluation.photos import ALL_68, MARKUP_3D, MARKUP_VISIBLE, NME_TARGET
from f2p.evaluation.report import FAILURE_RULE

FONT_SIZE = 12
DPI = 110
GROUP_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
FAILED_COLOR = "#d62728"
CURVE_POINTS = 400


@dataclass(frozen=True)
class CurvePanel:
    """One panel of a CED figure.

    Attributes:
        title: panel title.
        xlabel: x-axis label, with units.
        curves: {legend label: per-item errors}; None or inf marks a failed item (above every threshold).
        limit: the x axis runs from 0 to ``limit`` (in error units, before ``scale``).
        scale: display factor (100 shows fractions as percent).
        target: a dashed vertical line at this error, or None.
    """

    title: str
    xlabel: str
    curves: dict[str, Sequence[float | None]]
    limit: float
    scale: float = 1.0
    target: float | None = None


def _errors(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.inf if v is None else v for v in values], dtype=np.float64)


def plot_ced(path: Path, panels: Sequence[CurvePanel], title: str, caption: str = "") -> None:
    """Cumulative error distribution: fraction of items with error <= x (``landmarks.cumulative_error``, the curve
    of the reports' AUC), one panel per ``CurvePanel``; ``caption`` under the panels. The PNG keeps ``title`` and
    ``caption`` as its Title and Description text."""
    figure = Figure(figsize=(6.4 * len(panels), 4.8), dpi=DPI, layout="constrained")
    figure.suptitle(title, fontsize=FONT_SIZE + 2)
    if caption:
        figure.supxlabel(caption, fontsize=FONT_SIZE - 1)
    for axes, panel in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        thresholds = np.linspace(0.0, panel.limit, CURVE_POINTS)
        for color, (label, values) in zip(GROUP_COLORS, panel.curves.items()):
            errors = _errors(values)
            fraction = cumulative_error(torch.from_numpy(errors), torch.from_numpy(thresholds)).numpy()
            axes.plot(thresholds * panel.scale, fraction, color=color, linewidth=2.2,
                      label=f"{label} (n={len(errors)}, failed {int(np.isinf(errors).sum())})", drawstyle="steps-post")
        if panel.target is not None:
            axes.axvline(panel.target * panel.scale, color="black", linestyle="--", linewidth=1.2,
                         label=f"target {panel.target * panel.scale:g}")
        axes.set(xlim=(0, panel.limit * panel.scale), ylim=(0, 1.02), xlabel=panel.xlabel,
                 ylabel="fraction with error <= x", title=panel.title)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize=FONT_SIZE - 2)
        for item in [axes.title, axes.xaxis.label, axes.yaxis.label]:
            item.set_fontsize(FONT_SIZE)
        axes.tick_params(labelsize=FONT_SIZE - 1)
    figure.savefig(path, metadata={"Title": title, "Description": caption})


@dataclass(frozen=True)
class Bar:
    """One item of a bar chart: ``value`` None means failed (drawn as a labelled gap)."""

    label: str
    value: float | None
    group: str = ""
    note: str = ""


def plot_bars(path: Path, bars: Sequence[Bar], xlabel: str, title: str, scale: float = 1.0,
              target: float | None = None) -> None:
    """Horizontal bars sorted by value, worst at the top, failed items above them; colour = group."""
    done = sorted((b for b in bars if b.value is not None), key=lambda b: b.value)
    failed = [b for b in bars if b.value is None]
    ordered = done + failed
    groups = list(dict.fromkeys(b.group for b in ordered))
    colors = {g: GROUP_COLORS[i % len(GROUP_COLORS)] for i, g in enumerate(groups)}
    figure = Figure(figsize=(9.0, 2.2 + 0.36 * max(len(ordered), 1)), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(ordered))
    values = [b.value * scale if b.value is not None else 0.0 for b in ordered]
    axes.barh(positions, values, color=[colors[b.group] for b in ordered], height=0.7)
    top = max(values + [(target or 0.0) * scale, 1e-9])
    for y, bar, value in zip(positions, ordered, values):
        text = "FAILED" + (f": {bar.note}" if bar.note else "") if bar.value is None else f"{value:.2f} {bar.note}"
        axes.text(value + 0.01 * top, y, text, va="center", fontsize=FONT_SIZE - 3,
                  color=FAILED_COLOR if bar.value is None else "black",
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
    if target is not None:
        axes.axvline(target * scale, color="black", linestyle="--", linewidth=1.2, label=f"target {target * scale:g}")
    for group in groups:
        if group:
            axes.barh([0], [0], color=colors[group], label=group)
    if any(groups) or target is not None:
        axes.legend(loc="lower right", fontsize=FONT_SIZE - 2)
    axes.set_yticks(positions, [b.label for b in ordered], fontsize=FONT_SIZE - 2)
    axes.set_xlim(0, top * 1.35)
    axes.set_xlabel(xlabel, fontsize=FONT_SIZE)
    axes.set_title(title, fontsize=FONT_SIZE + 1)
    axes.grid(axis="x", alpha=0.3)
    figure.savefig(path)


def contact_sheet(path: Path, images: Sequence[Image.Image], captions: Sequence[str], title: str,
                  columns: int = 2) -> None:
    """Images in a grid with a caption above each (e.g. the worst fits' photo | render | overlay strips)."""
    rows = max(1, math.ceil(len(images) / columns))
    aspect = max((im.height / im.width for im in images), default=1 / 3)
    figure = Figure(figsize=(8.0 * columns, (8.0 * aspect + 0.5) * rows + 0.6), dpi=DPI, layout="constrained")
    figure.suptitle(title, fontsize=FONT_SIZE + 2)
    for i, axes in enumerate(figure.subplots(rows, columns, squeeze=False).ravel()):
        axes.axis("off")
        if i < len(images):
            axes.imshow(np.asarray(images[i].convert("RGB")))
            axes.set_title(captions[i], fontsize=FONT_SIZE)
    figure.savefig(path)


CED_FILE, BARS_FILE, WORST_FILE = "ced.png", "per_photo.png", "worst_fits.png"
PHOTO_CED_LIMIT = 0.10
NME_LABEL = "NME, % of sqrt(w*h) of the annotated 68-point box"


def _load(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def photo_figures(out_dir: Path, records: list[dict], worst: int) -> list[Path]:
    """CED per markup family, per-photo NME bars and the worst fits of a photo evaluation (``photos`` records);
    returns the files written (none without 68-point annotations)."""
    scored = [r for r in records if r["markup"] in (MARKUP_3D, MARKUP_VISIBLE)]
    if not scored:
        return []
    groups = {ALL_68: scored, **{m: [r for r in scored if r["markup"] == m] for m in (MARKUP_3D, MARKUP_VISIBLE)}}
    panels = [CurvePanel(points, NME_LABEL,
                         {name: [r[metric] for r in members] for name, members in groups.items() if members},
                         PHOTO_CED_LIMIT, scale=100.0, target=NME_TARGET if metric == "nme68_box" else None)
              for points, metric in (("all 68 points", "nme68_box"), ("51 inner points (no jaw)", "nme51_box"))]
    plot_ced(out_dir / CED_FILE, panels, "Landmark error of the fits: cumulative distribution",
             f"{FAILURE_RULE[0].upper()}{FAILURE_RULE[1:]}")
    bars = [Bar(Path(r["image"]).name, r["nme68_box"], r["markup"],
                "" if r["nme68_box"] is not None else r["error"].split(" (")[0][:80]) for r in scored]
    plot_bars(out_dir / BARS_FILE, bars,
              f"{NME_LABEL} (68 points)", "Per-photo landmark error (photos with 68-point annotations)", scale=100.0,
              target=NME_TARGET)
    written = [out_dir / CED_FILE, out_dir / BARS_FILE]
    ranked = sorted((r for r in scored if r["nme68_box"] is not None and r["fit_png"]),
                    key=lambda r: -r["nme68_box"])[:worst]
    if ranked:
        contact_sheet(out_dir / WORST_FILE, [_load(r["fit_png"]) for r in ranked],
                      [f"{Path(r['image']).name}: NME68 {r['nme68_box'] * 100:.2f} % ({r['markup']})" for r in ranked],
                      f"The {len(ranked)} worst fits (photo | render | overlay: green detected, red fitted landmarks "
                      "| shape, front | shape, side)")
        written.append(out_dir / WORST_FILE)
    return written


def _yaw_group(yaw_deg: float) -> str:
    return "|yaw| <= 15 deg" if abs(yaw_deg) <= 15 else "|yaw| 15-30 deg" if abs(yaw_deg) <= 30 else "|yaw| > 30 deg"


def synthetic_figures(out_dir: Path, records: list[dict], worst: list[tuple[Image.Image, str]],
                      target_mm: float | None) -> list[Path]:
    """CED of vertex and landmark errors, per-face vertex-error bars and the worst fits of a synthetic evaluation;
    ``target_mm``: the similarity-aligned error's target, drawn as a line (None: no line)."""
    ok = [r for r in records if r["status"] == "ok"]
    spaces = ("vertex_median_mm", "aligned_vertex_median_mm", "similarity_vertex_median_mm")
    largest = max([r[key] for r in ok for key in spaces], default=1.0)
    scale = target_mm or 1.0
    limit = min(max(2.0 * scale, 1.1 * largest), 20.0 * scale)

    def values(key: str) -> list[float | None]:
        return [r[key] if r["status"] == "ok" else None for r in records]

    panels = [CurvePanel("per-face median vertex error, face region", "error, mm",
                         dict(zip(("model space", "after rigid alignment", "after similarity alignment"),
                                  map(values, spaces))), limit, target=target_mm),
              CurvePanel("landmarks (68 points)", NME_LABEL, {"fitted vs true": values("nme68_box")},
                         PHOTO_CED_LIMIT, scale=100.0)]
    plot_ced(out_dir / CED_FILE, panels, f"Synthetic recovery of {len(records)} faces: cumulative error distribution")
    plot_bars(out_dir / BARS_FILE, [Bar(r["face"], r["similarity_vertex_median_mm"] if r["status"] == "ok" else None,
                                        _yaw_group(r["yaw_deg"]), f"(yaw {r['yaw_deg']:+.0f})") for r in records],
              "median vertex error of the face region after similarity alignment, mm", "Per-face shape error",
              target=target_mm)
    written = [out_dir / CED_FILE, out_dir / BARS_FILE]
    if worst:
        contact_sheet(out_dir / WORST_FILE, [image for image, _ in worst], [caption for _, caption in worst],
                      f"The {len(worst)} worst recoveries (input | fitted render | overlay: green true, red fitted "
                      "landmarks)")
        written.append(out_dir / WORST_FILE)
    return written
