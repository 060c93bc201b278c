"""Show a face model: vertices, faces, parameter groups, licence; optionally write its neutral mesh.

Examples:
  python -m f2p model                          # the default model (ict), searched in F2P_MODEL_PATH, then the cache
  python -m f2p model sfm --download           # fetch the open model into the cache if it is missing
  python -m f2p model path/to/model.npz --out out/   # writes out/<name>_neutral.obj and out/<name>_model.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from f2p.model_names import DEFAULT_MODEL, MODEL_NAMES

if TYPE_CHECKING:
    from f2p.morphable.base import MorphableModel

NAMES_WIDTH = 110
"""Component names (every one of them) are wrapped at this many characters, under their group's line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"model name ({', '.join(MODEL_NAMES)}; default {DEFAULT_MODEL}) or path to a model file "
                             "or folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write the neutral mesh (OBJ, metres) and a JSON description into")
    parser.add_argument("--download", action="store_true",
                        help="fetch an open model (ict, sfm) from its public repository into the cache if missing")


def describe(model: MorphableModel) -> dict:
    """A JSON-serialisable description of a model: sizes, parameter groups, landmarks, metadata."""
    return {
        "name": model.name,
        "num_vertices": model.num_vertices,
        "num_faces": int(model.faces.shape[0]),
        "face_region_vertices": int(model.face_region.sum()),
        "groups": [{"name": g.name, "size": g.size, "prior_std": list(g.prior_std),
                    "lower": None if g.lower is None else list(g.lower),
                    "upper": None if g.upper is None else list(g.upper),
                    "component_names": None if g.component_names is None else list(g.component_names)}
                   for g in model.groups.values()],
        "landmark_confidence": model.landmark_confidence.tolist(),
        "metadata": dict(getattr(model, "metadata", {})),
    }


def format_description(info: dict) -> str:
    """Human-readable text of ``describe(model)``."""
    approximated = sum(c < 1.0 for c in info["landmark_confidence"])
    lines = [f"name       {info['name']}",
             f"vertices   {info['num_vertices']}  (face region: {info['face_region_vertices']})",
             f"faces      {info['num_faces']} triangles",
             f"landmarks  68 iBUG points, {approximated} approximated (confidence < 1)",
             "parameter groups:"]
    for g in info["groups"]:
        bounds = "unbounded" if g["lower"] is None else _bounds_text(g["lower"], g["upper"])
        stds = sorted(set(g["prior_std"]))
        prior = f"prior std {stds[0]:g}" if len(stds) == 1 else f"prior std {stds[0]:g}..{stds[-1]:g}"
        lines.append(f"  {g['name']:<12} {g['size']:>4}  {prior:<18} {bounds}")
        if g["component_names"]:
            lines.append(textwrap.fill(", ".join(g["component_names"]), NAMES_WIDTH, initial_indent=" " * 4,
                                       subsequent_indent=" " * 4, break_long_words=False, break_on_hyphens=False))
    lines += [f"{key:<10} {value}" for key, value in info["metadata"].items()]
    return "\n".join(lines)


def _bounds_text(lower: list[float], upper: list[float]) -> str:
    if len(set(lower)) == 1 and len(set(upper)) == 1:
        return f"[{lower[0]:g}, {upper[0]:g}]"
    return f"[{min(lower):g}..{max(lower):g}, {min(upper):g}..{max(upper):g}]"


def write_outputs(model: MorphableModel, info: dict, out: Path) -> tuple[Path, Path]:
    """Write ``<name>_neutral.obj`` (the all-zero-parameter mesh, metres) and ``<name>_model.json`` into ``out``."""
    import torch

    from f2p.morphable.obj_io import format_obj

    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        verts = model(**model.zero_params(1)).verts[0].cpu().numpy()
    obj_path, json_path = out / f"{model.name}_neutral.obj", out / f"{model.name}_model.json"
    header = f"{model.name} neutral mesh (all parameters zero), metres, x left of the subject, y up, z to the viewer"
    obj_path.write_text(format_obj(verts, model.faces.cpu().numpy(), header=header), encoding="utf-8")
    json_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return obj_path, json_path


def run(args: argparse.Namespace) -> int:
    from f2p.morphable.base import ModelFileError
    from f2p.morphable.registry import load_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model = load_model(args.model, download=args.download)
    except ModelFileError as error:
        print(f"f2p model: {error}", file=sys.stderr)
        return 1
    info = describe(model)
    print(format_description(info))
    if args.out is not None:
        for path in write_outputs(model, info, args.out):
            print(f"wrote {path}")
    return 0
