"""A clip's per-frame outputs: frames.csv (Live Link Face layout), frames.npz and overlay.mp4.

frames.csv follows the CSV that Epic's Live Link Face app exports (and Unreal's LiveLinkFaceImporter and the
Blender/Maya importers read): a header row, then one row per frame with

- ``Timecode``: ``HH:MM:SS:FF.mmm`` from the clip's start, ``FF`` the frame within the second at the clip's frame
  rate and ``.mmm`` the sub-frame fraction in thousandths;
- ``BlendShapeCount``: 61 (52 blendshapes and 9 rotations), as the app writes;
- the 52 ARKit weights in Live Link Face's column order (``LIVE_LINK_FACE_NAMES``: Apple's order except that the
  app puts ``JawRight`` before ``JawLeft`` and ``MouthRight`` before ``MouthLeft``), PascalCase;
- ``HeadYaw``, ``HeadPitch``, ``HeadRoll`` in radians (f2p's yaw/pitch/roll of ``conventions``:
  ``R_head = Rz(roll) Ry(yaw) Rx(pitch)``, +yaw turns the face to the subject's left), then the six eye rotations
  (``LeftEyeYaw`` ... ``RightEyeRoll``), written 0: f2p does not estimate gaze.

Frames where no face was found carry bridged values (``pipeline.video_run``); the CSV has no column for that, the
``found`` mask is in frames.npz.
"""

from __future__ import annotations

import io
import math
import os
from fractions import Fraction
from collections.abc import Iterator
from contextlib import contextmanager

import av
import numpy as np
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.export.arkit import ARKIT_NAMES

APPLE_TO_LIVE_LINK_SWAPS = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"))
"""Pairs whose order Live Link Face's CSV swaps relative to Apple's ``ARFaceAnchor.BlendShapeLocation`` list."""
HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
OVERLAY_CODEC = "libx264"
OVERLAY_PIXEL_FORMAT = "yuv420p"
OVERLAY_CRF = "23"
OVERLAY_PRESET = "veryfast"
"""H.264 at libx264's default quality and its ``veryfast`` preset (640x480 frames of the synthetic clip: 8 ms a
frame and 30 KiB for 30 frames, against 14 ms and 34 KiB with the default ``medium``); yuv420p (what players
expect) needs even sides, so odd sides are padded."""


def _live_link_order() -> tuple[str, ...]:
    names = list(ARKIT_NAMES)
    for a, b in APPLE_TO_LIVE_LINK_SWAPS:
        i, j = names.index(a), names.index(b)
        names[i], names[j] = names[j], names[i]
    return tuple(names)


LIVE_LINK_FACE_NAMES = _live_link_order()
"""ARKit's 52 names in Live Link Face's CSV column order (camelCase as ARKit spells them)."""
BLEND_SHAPE_COUNT = len(ARKIT_NAMES) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)


def pascal_case(name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft`` (Live Link Face's column names)."""
    return name[:1].upper() + name[1:]


def timecode(seconds: float, fps: float) -> str:
    """Live Link Face's ``HH:MM:SS:FF.mmm`` for ``seconds`` from the start at ``fps`` frames per second."""
    whole = math.floor(seconds + 1e-9)
    frames = (seconds - whole) * fps
    frame = math.floor(frames + 1e-6)
    sub = min(999, round((frames - frame) * 1000))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{frame:02d}.{max(sub, 0):03d}"


def frames_csv(times: np.ndarray, fps: float, arkit: np.ndarray, head_ypr_rad: np.ndarray) -> str:
    """frames.csv's text (module docstring).

    Args:
        times: (N,) frame times in seconds from the clip's start.
        fps: the clip's frame rate.
        arkit: (N, 52) ARKit weights in ``ARKIT_NAMES`` (Apple's) order.
        head_ypr_rad: (N, 3) head yaw, pitch, roll in radians.
    """
    order = [ARKIT_NAMES.index(name) for name in LIVE_LINK_FACE_NAMES]
    header = ["Timecode", "BlendShapeCount", *map(pascal_case, LIVE_LINK_FACE_NAMES), *HEAD_COLUMNS, *EYE_COLUMNS]
    lines = [",".join(header)]
    eyes = ",".join(["0"] * len(EYE_COLUMNS))
    for t, weights, head in zip(times, arkit[:, order], head_ypr_rad):
        values = ",".join(f"{v:.6f}" for v in (*weights, *head))
        lines.append(f"{timecode(float(t), fps)},{BLEND_SHAPE_COUNT},{values},{eyes}")
    return "\n".join(lines) + "\n"


def write_frames_csv(path: str | os.PathLike, times: np.ndarray, fps: float, arkit: np.ndarray,
                     head_ypr_rad: np.ndarray) -> None:
    """Write ``frames_csv(...)`` to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(frames_csv(times, fps, arkit, head_ypr_rad).encode("utf-8"))


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed .npz to ``path`` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_writer(path) as handle:
        handle.write(buffer.getvalue())


class OverlayWriter:
    """Encodes frames into an H.264 .mp4 (PyAV) at the clip's frame rate and times.

    Args:
        handle: the open binary file to write (``atomic_writer``'s).
        fps: frame rate.
        size: (H, W) of the frames.
    """

    def __init__(self, handle, fps: float, size: tuple[int, int]) -> None:
        H, W = size
        self.size = (H + H % 2, W + W % 2)
        self.container = av.open(handle, mode="w", format="mp4")
        self.stream = self.container.add_stream(OVERLAY_CODEC, rate=Fraction(fps).limit_denominator(1001),
                                                options={"crf": OVERLAY_CRF, "preset": OVERLAY_PRESET})
        self.stream.height, self.stream.width = self.size
        self.stream.pix_fmt = OVERLAY_PIXEL_FORMAT

    def write(self, image: Tensor) -> None:
        """Append one (3, H, W) RGB frame in [0, 1]."""
        pixels = (image.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()
        H, W = self.size
        if pixels.shape[:2] != (H, W):
            pixels = np.pad(pixels, ((0, H - pixels.shape[0]), (0, W - pixels.shape[1]), (0, 0)), mode="edge")
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


@contextmanager
def overlay_video(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> Iterator[OverlayWriter]:
    """An ``OverlayWriter`` whose .mp4 replaces ``path`` only if the block finishes without error."""
    with atomic_writer(path) as handle:
        writer = OverlayWriter(handle, fps, size)
        try:
            yield writer
        finally:
            writer.close()
