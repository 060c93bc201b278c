"""Clips: decoding, the clip pipeline on a short synthetic clip (curves, outputs, bridging, resume) and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pygltflib
import pytest
import torch

from f2p.cli import main
from f2p.evaluation.synthetic_clip import encode_clip, identity_error_mm, slider_errors, synthetic_clip
from f2p.export.report_page import write_report_page
from f2p.export.summary import summary_row
from f2p.export.video import LIVE_LINK_FACE_NAMES, frames_csv, timecode
from f2p.perception.photo import FaceLandmarks, PhotoError
from f2p.perception.video import Clip, VideoError
from f2p.pipeline.temporal import bridge, bridge_rotations, smooth
from f2p.pipeline.video_run import ClipOptions, ClipRun
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec

FRAMES, SIZE, FACE_PX = 10, (192, 256), 100.0


@pytest.fixture(scope="module")
def ict(models_dir):
    from f2p.morphable import load_model

    return load_model("ict")


@pytest.fixture(scope="module")
def clip(ict, tmp_path_factory):
    """A 10-frame 256x192 synthetic clip of a random ICT face, encoded as H.264."""
    rendered = synthetic_clip(ict, MeshRenderer(), FRAMES, SIZE, seed=3, face_height_px=FACE_PX)
    path = tmp_path_factory.mktemp("clip") / "talking.mp4"
    encode_clip(path, rendered)
    return rendered, path


def truth_perceiver(rendered, missing=()):
    """The clip's projected model landmarks as the detector's (frames in ``missing`` have no face)."""

    def perceive(name, index, image):
        if index in missing:
            raise PhotoError(name, "no face found (test)")
        return FaceLandmarks(rendered.landmarks[index], torch.ones(68), "truth",
                             (rendered.dense[index], torch.ones(468)))

    return perceive


def clip_run(ict, perceive, **options):
    return ClipRun(SceneSpec(ict, (224, 224)), MeshRenderer(), perceive,
                   ClipOptions(quality="fast", keyframes=4, batch_size=4, **options))


def test_clip_decodes_every_frame_with_its_time(clip):
    rendered, path = clip
    frames = list(Clip(path).frames())
    assert [f.index for f in frames] == list(range(FRAMES))
    assert np.allclose([f.time for f in frames], np.arange(FRAMES) / 30.0)
    assert frames[0].image.shape == (3, *SIZE)
    assert (frames[4].image - rendered.frames[4]).abs().mean() < 0.03  # H.264 is lossy, not this lossy


def test_clip_recovers_curves_and_writes_every_output(ict, clip, tmp_path):
    rendered, path = clip
    outcome = clip_run(ict, truth_perceiver(rendered), smooth=0.0).process(path, tmp_path / "out")
    assert outcome.status == "ok", outcome.error
    out = tmp_path / "out"
    data = np.load(out / "frames.npz")
    assert data["found"].all() and data["expression"].shape == (FRAMES, 53)
    errors = slider_errors(data["expression"], rendered, ict.groups["expression"].component_names)
    mouth = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "mouthFunnel")  # brows and lids are small at 100 px
    assert max(errors[name] for name in mouth) < 0.1 and np.mean(list(errors.values())) < 0.2, errors
    assert float(identity_error_mm(ict, torch.from_numpy(data["identity"])[None].float(), rendered)[0]) < 2.0
    true_yaw = np.degrees(rendered.params["pose"].norm(dim=1).numpy())  # turns of a few degrees
    assert np.abs(np.linalg.norm(data["head_axis_angle"], axis=1) * 180 / np.pi - true_yaw).max() < 3.0
    rows = list(csv.reader((out / "frames.csv").open()))
    assert rows[0][:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert rows[0][54:57] == ["HeadYaw", "HeadPitch", "HeadRoll"] and len(rows) == FRAMES + 1
    jaw = rows[0].index("JawOpen")
    truth_jaw = rendered.params["expression"][:, ict.groups["expression"].component_names.index("jawOpen")]
    assert np.abs(np.array([float(r[jaw]) for r in rows[1:]]) - truth_jaw.numpy()).mean() < 0.1
    glb = pygltflib.GLTF2().load(str(out / "head.glb"))
    animation = glb.animations[0]
    assert sorted(c.target.path for c in animation.channels) == ["rotation", "weights"]
    assert glb.accessors[animation.samplers[0].input].count == FRAMES
    with av.open(str(out / "overlay.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == FRAMES
    assert not (out / "progress").exists() and (out / "clip.json").is_file()


def test_a_clip_fits_with_the_sliding_contour_and_records_it(ict, clip, tmp_path):
    rendered, path = clip
    outcome = clip_run(ict, truth_perceiver(rendered), smooth=0.0, sliding_contour=True).process(path, tmp_path)
    assert outcome.status == "ok", outcome.error
    assert json.loads((tmp_path / "clip.json").read_text())["settings"]["sliding_contour"] is True
    data = np.load(tmp_path / "frames.npz")
    errors = slider_errors(data["expression"], rendered, ict.groups["expression"].component_names)
    assert max(errors[name] for name in ("jawOpen", "mouthSmile_L", "mouthSmile_R")) < 0.1, errors
    assert float(identity_error_mm(ict, torch.from_numpy(data["identity"])[None].float(), rendered)[0]) < 2.0


def test_frames_without_a_face_are_bridged_and_marked(ict, clip, tmp_path):
    rendered, path = clip
    outcome = clip_run(ict, truth_perceiver(rendered, missing={4, 5}), smooth=0.0).process(path, tmp_path / "out")
    assert outcome.status == "ok" and outcome.metrics["frames_missing"] == [4, 5]
    data = np.load(tmp_path / "out" / "frames.npz")
    assert data["found"].tolist() == [i not in (4, 5) for i in range(FRAMES)]
    raw = data["expression_raw"]
    assert np.isnan(raw[4]).all()  # never invented: the per-frame fit of a missing frame is empty
    assert np.allclose(data["expression"][4], raw[3] + (raw[6] - raw[3]) / 3, atol=1e-6)
    page = write_report_page(tmp_path, [summary_row(outcome)]).read_text()  # the clip's entry on index.html
    assert 'href="out/overlay.mp4"' in page and 'data-head="out/head.glb"' in page
    assert "<dt>frames found</dt><dd>8 of 10 (2 bridged)</dd>" in page


def count_batches(run, calls, interrupt_at=None):
    """Record the batch size of every per-frame fit of ``run`` in ``calls``; raise KeyboardInterrupt at batch
    ``interrupt_at`` (1-based)."""
    for fitter in (run.first_fitter, run.frame_fitter):
        def fit(obs, init=None, on_step=None, _fit=fitter.fit):
            calls.append(obs.batch_size)
            if len(calls) == interrupt_at:
                raise KeyboardInterrupt
            return _fit(obs, init=init, on_step=on_step)

        fitter.fit = fit


def test_interrupted_clip_resumes_after_its_last_fitted_frame(ict, clip, tmp_path):
    rendered, path = clip
    first, calls = clip_run(ict, truth_perceiver(rendered)), []
    count_batches(first, calls, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        first.process(path, tmp_path / "out")
    assert len(list((tmp_path / "out" / "progress").glob("frame_*.npz"))) == 4
    second, fitted = clip_run(ict, truth_perceiver(rendered)), []
    count_batches(second, fitted)
    assert second.process(path, tmp_path / "out").status == "ok"
    assert sum(fitted) == FRAMES - 4


def test_bad_clips_fail_alone_with_one_line(clip, tmp_path, models_dir, capsys):
    _, good = clip
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    empty = tmp_path / "empty_frames"
    empty.mkdir()
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(3):
        from PIL import Image

        Image.fromarray(np.full((96, 128, 3), 128, np.uint8)).save(blank / f"{i:03d}.png")
    code = main(["reconstruct", str(broken), str(empty), str(blank), "--video", "--out", str(tmp_path / "out"),
                 "--landmarks", "dlib", "--quality", "fast", "--no-identity"])
    assert code == 1
    rows = {Path(r["image"]).name: r for r in csv.DictReader((tmp_path / "out" / "summary.csv").open())}
    assert rows["broken.mp4"]["status"] == "failed" and "cannot be decoded" in rows["broken.mp4"]["error"]
    assert "no frames" in rows["empty_frames"]["error"]
    assert "no face found in any of its 3 frames" in rows["blank"]["error"]
    assert all("\n" not in row["error"] for row in rows.values())


def test_temporal_bridge_and_zero_phase_smoothing():
    values = np.array([[0.0], [9.0], [9.0], [3.0], [4.0]])
    found = np.array([True, False, False, True, True])
    assert bridge(values, found)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    bump = np.exp(-0.5 * ((np.arange(81) - 40) / 8.0) ** 2)[:, None]
    noisy = bump + np.random.default_rng(0).normal(0, 0.05, bump.shape)
    smoothed = smooth(noisy, 2.0)
    assert np.argmax(smoothed) in (39, 40, 41)  # no lag
    assert np.abs(smoothed - bump).mean() < 0.6 * np.abs(noisy - bump).mean()
    q = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [-1.0, 0, 0, 0]])  # -q is the same rotation as q
    assert np.allclose(bridge_rotations(q, np.array([True, False, True])), [[1, 0, 0, 0]] * 3)


def test_live_link_face_columns_and_timecode():
    assert LIVE_LINK_FACE_NAMES[14:18] == ("jawForward", "jawRight", "jawLeft", "jawOpen")
    assert LIVE_LINK_FACE_NAMES[21:23] == ("mouthRight", "mouthLeft") and len(LIVE_LINK_FACE_NAMES) == 52
    assert timecode(61.5, 30.0) == "00:01:01:15.000"
    text = frames_csv(np.array([0.0]), 30.0, np.zeros((1, 52)), np.zeros((1, 3)))
    header, row = text.splitlines()
    assert header.split(",")[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert row.split(",")[:2] == ["00:00:00:00.000", "61"] and len(row.split(",")) == 63


def test_unreadable_video_is_one_line(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(VideoError) as error:
        Clip(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
