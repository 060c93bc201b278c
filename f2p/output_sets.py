"""What ``reconstruct --outputs`` writes per photo (torch-free: the command's help imports it)."""

from __future__ import annotations

from typing import Literal, get_args

OutputSet = Literal["all", "data"]
"""A choice of ``--outputs`` as a type (LightningCLI checks config values against it)."""

OUTPUT_FILES = ("params.json", "params.npz", "mesh.obj", "landmarks.json", "overlay.png", "fit.png", "head.glb",
                "arkit.json", "metrics.json")
DATA_FILES = ("params.json", "params.npz", "mesh.obj", "landmarks.json", "arkit.json", "metrics.json")
"""The files of ``--outputs data``: every number and the mesh, without the pictures and head.glb (whose renders in
photo pixels, shape views and texture bake are most of an export's time)."""
OUTPUTS = dict(zip(get_args(OutputSet), (OUTPUT_FILES, DATA_FILES)))
"""The choices of ``--outputs``: the files each writes per photo."""
DEFAULT_OUTPUTS = "all"
OUTPUTS_HELP = ("files per photo: all (default) | data (params, mesh.obj, landmarks, arkit.json and metrics.json; no "
                "overlay.png, fit.png, head.glb or a clip's overlay.mp4, and none of the renders and texture bake "
                "they need: for speed)")
