"""Every import inside f2p points down the layer table of README's Architecture section (lazy imports included)."""

import ast
from pathlib import Path

import f2p

LAYERS = (
    ("commands", "cli", "__main__"),
    ("systems",),
    ("pipeline", "evaluation"),
    ("data", "nets", "fitting", "export"),
    ("scene",),
    ("perception",),
    ("morphable", "render", "losses"),
    ("pretrained",),
    ("torch_files",),
    ("conventions", "errors", "atomic", "naming", "model_names", "face_mesh", "quality", "output_sets", "weights"),
)
"""README's table, top to bottom; the last line holds the leaves, which import no other part of f2p."""
SIBLING_IMPORTS = {
    ("__main__", "cli"): "`python -m f2p` is the command line",
    ("cli", "commands"): "the command line dispatches to the friendly commands and their first-run downloads",
}
"""Imports between units on one line, with their reason."""
LEAVES = set(LAYERS[-1])
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
PACKAGE = Path(f2p.__file__).parent


def _unit(module: str) -> str:
    """The layer unit of a dotted f2p module name: its package (``f2p.fitting.solver`` -> ``fitting``)."""
    return module.split(".")[1]


def _imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, "file:line") of every f2p import between two units."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _unit(".".join(("f2p", *path.relative_to(PACKAGE).with_suffix("").parts)))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                if name.startswith("f2p.") and _unit(name) != here:
                    found.append((here, _unit(name), f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"))
    return found


def test_every_unit_has_a_layer() -> None:
    units = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" or (path / "__init__.py").is_file()) and path.name != "__init__.py"}
    assert units - set(RANK) == set(), "add new packages and leaf modules to LAYERS and to README's table"


def test_imports_point_down_the_layers() -> None:
    imports = _imports()
    assert len(imports) > 100  # the walk sees the package's imports
    upward = [f"{where}: {here} imports {there}" for here, there, where in imports
              if RANK[there] < RANK[here] or (RANK[there] == RANK[here] and (here, there) not in SIBLING_IMPORTS)]
    assert upward == []


def test_the_leaves_import_no_other_part_of_f2p() -> None:
    assert [where for here, _, where in _imports() if here in LEAVES] == []
