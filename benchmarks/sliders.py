"""How reusable are the fitted expression sliders on a rig: L/R asymmetry and opposing-pair overlap of a run.

    python benchmarks/sliders.py runs/faces [runs/other ...]

Reads every ``params.json`` under each ``reconstruct`` output folder and prints, per folder, the mean over photos
of: the mean absolute left/right difference of the mirror pairs (``cheekSquint_L`` vs ``cheekSquint_R``, and
``eyeLookIn_L`` vs ``eyeLookOut_R``), the largest such difference, the mean overlap ``min(a, b)`` of the opposing
pairs (``jawLeft`` / ``jawRight``, ``eyeLookIn_L`` / ``eyeLookOut_L``) and the largest, and the mean slider value.
The pairs come from the slider names (``f2p.losses.priors.slider_pairs``, the rules are documented there), the
same pairs the fit's ``symmetry`` prior uses. Nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def slider_table(folder: Path) -> dict[str, float] | None:
    """Mean pair statistics over the photos of one ``reconstruct`` output folder, None without params.json."""
    from f2p.losses.priors import slider_pair_stats, slider_pairs

    rows = []
    for path in sorted(folder.glob("*/params.json")):
        sliders = json.loads(path.read_text())["parameters"].get("expression")
        if isinstance(sliders, dict):
            rows.append(sliders)
    if not rows:
        return None
    names = tuple(rows[0])
    values = torch.tensor([[row[name] for name in names] for row in rows])  # (photos, K)
    pairs = slider_pairs(names)
    lopsided = (values[:, pairs.mirror[:, 0]] - values[:, pairs.mirror[:, 1]]).abs()  # (photos, M)
    overlap = torch.minimum(values[:, pairs.opposing[:, 0]], values[:, pairs.opposing[:, 1]])  # (photos, O)
    mean_lopsided, mean_overlap = slider_pair_stats(values, pairs)  # (photos,) each
    return {"photos": len(rows), "mirror pairs": len(pairs.mirror), "opposing pairs": len(pairs.opposing),
            "L/R |diff| mean": float(mean_lopsided.mean()), "L/R |diff| max": float(lopsided.max()),
            "overlap mean": float(mean_overlap.mean()), "overlap max": float(overlap.max()),
            "slider mean": float(values.mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="reconstruct output folders")
    args = parser.parse_args(argv)
    tables = {str(folder): slider_table(folder) for folder in args.folders}
    columns = next((list(t) for t in tables.values() if t), None)
    if columns is None:
        raise SystemExit("benchmarks/sliders.py: no params.json with named expression sliders in the folders given")
    width = max(len(name) for name in tables)
    print(f"{'run'.ljust(width)}  " + "  ".join(f"{c:>15}" for c in columns))
    for name, table in tables.items():
        cells = ["(no params.json)"] if table is None else [
            f"{table[c]:15d}" if isinstance(table[c], int) else f"{table[c]:15.3f}" for c in columns]
        print(f"{name.ljust(width)}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
