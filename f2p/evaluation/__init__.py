"""Evaluation: how well parameters explain photos (landmark NME, head pose, identity) and how well fitting recovers
known parameters of synthetic renders (per-vertex error in mm, parameter errors), measured the way the field does.

Modules, one job each:
    landmarks   NME with the box and eye-corner normalisers, cumulative error curves and their AUC
    geometry    rigid and similarity (Procrustes) alignment and per-vertex errors
    parameters  parameter-recovery errors (standardised RMSE, vertex and pose errors), shared with the regressor
    pose        head-pose matrices from params.json and AFLW2000-3D, angle errors with wrap-around
    identity    same- vs different-person similarity of fitted identity coefficients
    outputs     reading the per-photo outputs of ``reconstruct``/``predict``
    truth       reading annotations (annotations.json, ``.pts`` and AFLW2000-3D ``.mat`` folders)
    photos      scoring outputs against annotations
    synthetic   rendering faces with known parameters, fitting them and scoring the recovery
    summary     per-group statistics shared by both reports
    report      report.json, report.csv and the printed table
    figures     cumulative error curves, per-photo bars, contact sheet of the worst fits
"""

OUTLINES = ("fixed", "silhouette")
"""What the synthetic evaluation's observations mark as the face's outline (``synthetic.observe``): the model's fixed
jaw and face-oval points, or the true face's occluding contour. Here, torch-free, for the command line's choices."""
