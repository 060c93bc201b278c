"""Scoring the outputs of ``reconstruct``/``predict`` against annotations: landmark NME per markup family, head
pose, identity consistency and failures.

Markup families are scored apart because their jaw points mean different things: "3d-contour" (AFLW2000-3D,
300W-LP: the jaw follows the 3D jaw line of a fitted face model, hidden or not) and "visible-contour" (300-W, LFPW,
300-VW, menpo, plain ``.pts``: the jaw follows the visible silhouette). "all-68" pools both; the 51 inner points are
comparable across the two. Which one applies is read from the annotation (``Annotation.contour_3d``: the face-set
entry's ``jaw``, else its family); source families are the annotation's own (``Annotation.family``), and entries
that name none are scored under "other" (``f2p.perception.annotations.MARKUP_OTHER``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from f2p.evaluation.identity import compare_identities
from f2p.evaluation.landmarks import LANDMARK_METRICS, five_point_nme, landmark_nme
from f2p.evaluation.outputs import PhotoOutput
from f2p.evaluation.pose import POSE_ANGLES, aflw2000_head_rotation, pose_errors
from f2p.evaluation.summary import landmark_summary, statistics
from f2p.evaluation.truth import GroundTruth, truth_matcher
from f2p.perception.annotations import Annotation
from f2p.perception.crop import five_points
from f2p.perception.detection import box_iou
from f2p.perception.landmark_metrics import points_box
from f2p.render.rotations import matrix_to_euler

MARKUP_3D = "3d-contour"
MARKUP_VISIBLE = "visible-contour"
MARKUP_5 = "5-point"
ALL_68 = "all-68"
NME_TARGET = 0.035
"""Target of the fitting issue: mean NME (box normaliser) over all 68 points <= 3.5 %."""
MIN_FACE_IOU = 0.3
"""A photo whose detected landmarks' box overlaps the annotated face's box less than this was fitted on another face
of the photo: it is reported as failed (wrong face) instead of scored, as ``perception.landmark_metrics.match_face``
matches faces. The detected (not the fitted) landmarks decide, so a poor fit of the right face is scored."""
YAW_BINS = ("0-30", "30-60", "60+")
"""AFLW2000-3D protocol (3DDFA): NME per |yaw| bin [0, 30], (30, 60], above 60 degrees and the mean of the bins."""
DETECTED_METRICS = ("detected_nme68_box", "detected_nme51_box")
"""The same NME of the landmarks the fit was given (its detector's), to show whether the fit improves on them."""
RECORD_FIELDS = ("image", "status", "error", "family", "markup", "person", *LANDMARK_METRICS, *DETECTED_METRICS,
                 "nme68_box_reannotated",
                 "nme5_eyes", *(f"{a}_deg" for a in POSE_ANGLES), *(f"gt_{a}_deg" for a in POSE_ANGLES),
                 *(f"{a}_error_deg" for a in POSE_ANGLES), "pose_error_deg", "source_yaw_deg", "fit_png")
"""Columns of report.csv for photos; angles in f2p's convention (``f2p.evaluation.pose``)."""


@dataclass(frozen=True)
class PhotoEvaluation:
    """``records``: one flat dict per photo (``RECORD_FIELDS``, None where not applicable); ``summary``: the
    aggregate written to report.json."""

    records: list[dict]
    summary: dict


def markup_of(annotation: Annotation) -> str | None:
    """The markup family of an annotation, or None when it has no landmarks."""
    if annotation.points is None:
        return None
    if len(annotation.points) == 5:
        return MARKUP_5
    return MARKUP_3D if annotation.contour_3d else MARKUP_VISIBLE


def face_overlap(points: Tensor, target: Tensor) -> float:
    """IoU of the landmark boxes of (68, 2) points (reduced to 5 when ``target`` has 5) and (L, 2) ``target``."""
    points = five_points(points[None])[0] if len(target) == 5 else points
    return float(box_iou(points_box(points), points_box(target)))


def score_photo(output: PhotoOutput, truth: GroundTruth | None) -> dict:
    """One photo's record (``RECORD_FIELDS``): its errors against ``truth`` where both exist."""
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(image=output.image, status=output.status, error=output.error,
                  fit_png=None if output.fit_png is None else str(output.fit_png))
    if output.head_rotation is not None:
        record.update(zip((f"{a}_deg" for a in POSE_ANGLES), matrix_to_euler(output.head_rotation).tolist()))
    if truth is None:
        return record
    annotation = truth.annotation
    record.update(family=annotation.family, markup=markup_of(annotation), person=truth.person)
    if annotation.pose_deg is not None:
        R_truth = aflw2000_head_rotation(torch.tensor(annotation.pose_deg))
        record.update(zip((f"gt_{a}_deg" for a in POSE_ANGLES), matrix_to_euler(R_truth).tolist()))
        record["source_yaw_deg"] = annotation.pose_deg[1]
    if output.status != "ok":
        return record
    if annotation.points is not None:
        overlap = face_overlap(output.detected, annotation.points)
        if overlap < MIN_FACE_IOU:
            record.update(status="failed", error=f"fitted another face of the photo (detected landmark box IoU "
                                                 f"{overlap:.2f} with the annotated face, below {MIN_FACE_IOU})")
            return record
    if annotation.pose_deg is not None:
        errors = pose_errors(output.head_rotation, R_truth)
        record.update({f"{a}_error_deg": float(errors[a]) for a in POSE_ANGLES})
        record["pose_error_deg"] = float(errors["geodesic"])
    fitted = output.fitted[None]
    if record["markup"] == MARKUP_5:
        record["nme5_eyes"] = float(five_point_nme(fitted, annotation.points[None])[0])
    elif record["markup"] is not None:
        record.update({k: float(v[0]) for k, v in landmark_nme(fitted, annotation.points[None]).items()})
        detected = landmark_nme(output.detected[None], annotation.points[None])
        record.update({f"detected_{k}": float(detected[k][0]) for k in ("nme68_box", "nme51_box")})
        if truth.reannotated is not None:
            reannotated = landmark_nme(fitted, truth.reannotated.points[None])["nme68_box"]
            record["nme68_box_reannotated"] = float(reannotated[0])
    return record


def yaw_bin(yaw_deg: float) -> str:
    """The ``YAW_BINS`` entry of a yaw angle in degrees."""
    return YAW_BINS[0] if abs(yaw_deg) <= 30.0 else YAW_BINS[1] if abs(yaw_deg) <= 60.0 else YAW_BINS[2]


def yaw_bin_summary(records: list[dict]) -> dict | None:
    """AFLW2000-3D protocol (``YAW_BINS`` by the annotation's own |yaw|) over records with a pose, or None."""
    posed = [r for r in records if r["source_yaw_deg"] is not None and r["nme68_box"] is not None]
    if not posed:
        return None
    bins = {name: statistics([r["nme68_box"] for r in posed if yaw_bin(r["source_yaw_deg"]) == name])
            for name in YAW_BINS}
    means = [b["mean"] for b in bins.values() if b["n"]]
    return {"bins": bins, "balanced_mean": sum(means) / len(means) if len(means) == len(YAW_BINS) else None}


def evaluate_photos(outputs: list[PhotoOutput], truth: dict[str, GroundTruth]) -> PhotoEvaluation:
    """Score every output photo against its ground truth (matched by file name or stem) and summarise."""
    match = truth_matcher(truth)
    matched = [(output, match(output.image)) for output in outputs]
    records = [score_photo(output, gt) for output, gt in matched]
    with_68 = [r for r in records if r["markup"] in (MARKUP_3D, MARKUP_VISIBLE)]
    groups = {ALL_68: with_68, MARKUP_3D: [r for r in with_68 if r["markup"] == MARKUP_3D],
              MARKUP_VISIBLE: [r for r in with_68 if r["markup"] == MARKUP_VISIBLE]}
    landmarks = {name: landmark_summary(members) for name, members in groups.items() if members}
    families = sorted({r["family"] for r in with_68})
    five = [r for r in records if r["markup"] == MARKUP_5]
    posed = [r for r in records if r["pose_error_deg"] is not None]
    labelled = [(output.identity, record["person"]) for output, record in zip(outputs, records)
                if record["status"] == "ok" and record["person"] is not None and output.identity is not None]
    identity = None
    if labelled:
        comparison = compare_identities(torch.stack([v for v, _ in labelled]), [p for _, p in labelled])
        identity = {"photos": len(labelled), "persons": len({p for _, p in labelled}),
                    **(asdict(comparison) if comparison else {"note": "needs a same- and a different-person pair"})}
    summary = {
        "counts": {"photos": len(records), "ok": sum(r["status"] == "ok" for r in records),
                   "failed": sum(r["status"] != "ok" for r in records),
                   "with_annotation": sum(gt is not None for _, gt in matched),
                   "annotations_without_output": len(truth) - len({gt.key for _, gt in matched if gt is not None}),
                   "landmarks_68": len(with_68), "landmarks_5": len(five)},
        "landmarks": landmarks,
        "families": {f: landmark_summary([r for r in with_68 if r["family"] == f]) for f in families},
        "aflw2000_yaw_bins": yaw_bin_summary(groups[MARKUP_3D]),
        "five_point": {"photos": len(five), "failed": sum(r["status"] != "ok" for r in five),
                       "nme5_eyes": statistics([r["nme5_eyes"] for r in five])} if five else None,
        "pose": {"photos": len(posed), **{f"{a}_error_deg": statistics([r[f"{a}_error_deg"] for r in posed])
                                          for a in (*POSE_ANGLES, "pose")}} if posed else None,
        "identity": identity,
        "targets": {name: {"metric": "mean nme68_box", "value": group["nme68_box"].get("mean"), "target": NME_TARGET,
                           "met": group["nme68_box"].get("mean", float("inf")) <= NME_TARGET}
                    for name, group in landmarks.items()},
        "failures": [{"image": r["image"], "error": r["error"]} for r in records if r["status"] != "ok"],
    }
    return PhotoEvaluation(records, summary)
