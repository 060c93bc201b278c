"""Rigid and similarity (Procrustes) alignment and per-vertex errors of meshes in model space.

A single photo does not determine a face's absolute size (a face s times larger at s times the distance projects
to the same image), so scores of monocular reconstruction are usually taken after a similarity alignment, as in
the NoW and REALY benchmarks; the rigid and unaligned errors show how much of the error is size and placement.
The alignment itself is ``morphable.correspondence.similarity_align``, which registers the canonical face too.
"""

from __future__ import annotations

from torch import Tensor

from f2p.morphable.correspondence import similarity_align


def rigid_align(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares rotation and translation (no scale) taking ``source`` onto ``target`` (Kabsch).

    Args:
        source, target: (..., N, 3) corresponding points.

    Returns:
        R: (..., 3, 3) proper rotation (det +1) and t: (..., 3) with ``target ~= source @ R.T + t``.
    """
    _, R, t = similarity_align(source, target, scale=False)
    return R, t


ALIGNMENTS = ("none", "rigid", "similarity")


def vertex_errors(prediction: Tensor, target: Tensor, region: Tensor, align: str = "none") -> Tensor:
    """Distances of corresponding vertices inside ``region``, in the units of the input.

    Args:
        prediction, target: (B, V, 3) meshes with shared topology.
        region: (V,) bool, the vertices that count (e.g. ``model.face_region``).
        align: "none", or first move ``prediction`` onto ``target`` over the region: "rigid" (rotation and
            translation) or "similarity" (with a uniform scale), ``similarity_align``.

    Returns:
        (B, V_region) per-vertex distances.
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    prediction, target = prediction[:, region], target[:, region]
    if align != "none":
        s, R, t = similarity_align(prediction, target, scale=align == "similarity")
        prediction = s[:, None, None] * prediction @ R.transpose(-1, -2) + t[:, None]
    return (prediction - target).norm(dim=-1)
