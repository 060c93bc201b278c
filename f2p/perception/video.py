"""Clips: a video file decoded with PyAV, or a folder of frames read as a video, frame by frame.

A clip yields ``VideoFrame``s in presentation order: index, time in seconds from the clip's first frame, and the
image as a (3, H, W) RGB tensor in [0, 1] (``conventions``). Times come from the stream's presentation timestamps
(``frame.time``) where it has them, else ``index / fps``; a frames folder has no timestamps, its frames are
``1 / fps`` apart (``FRAMES_FPS`` unless told). Frames are decoded one at a time, so a clip of any length fits in
memory; decode the clip again for a second pass.

A file that is not a video, a video stream that breaks while decoding, or a clip without a single frame is a
``VideoError``: one line naming the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from f2p.errors import PathError, one_line
from f2p.perception.image_io import IMAGE_SUFFIXES, ImageReadError, load_image

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
"""File suffixes ``reconstruct`` sends to the clip pipeline (``is_video_file``)."""
FRAMES_FPS = 30.0
"""Frame rate of a folder of frames when none is given (``reconstruct --fps``)."""


class VideoError(PathError):
    """A clip that cannot be read: not a video, a broken stream, no frames."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based position in the clip.
        time: seconds from the clip's first frame.
        image: (3, H, W) RGB in [0, 1].
    """

    index: int
    time: float
    image: Tensor


def is_video_file(path: str | os.PathLike) -> bool:
    """True for a file with a ``VIDEO_SUFFIXES`` suffix (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frames of a folder: its image files (``IMAGE_SUFFIXES``, no sub-folders), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class Clip:
    """A video file or a folder of frames (see the module docstring).

    Args:
        path: the video file, or a folder whose image files, sorted by name, are the frames.
        fps: frame rate of a folder of frames (default ``FRAMES_FPS``); for a video file, None keeps the stream's
            own rate, a number overrides it for files that do not record one.

    Raises:
        VideoError: a missing path, a file PyAV cannot open or that has no video stream, an empty folder.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.files: list[Path] | None = None
        if self.path.is_dir():
            self.files = frame_files(self.path)
            if not self.files:
                raise VideoError(self.path, f"no frames: the folder has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.fps = float(fps or FRAMES_FPS)
            self.frame_count: int | None = len(self.files)
            return
        if not self.path.exists():
            raise VideoError(self.path, "no such file or folder")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise VideoError(self.path, "not a video: the file has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.frame_count = int(stream.frames) or None
        except (av.FFmpegError, OSError) as error:
            raise VideoError(self.path, f"cannot be decoded as a video ({one_line(error)})") from None
        self.fps = float(fps or (rate if rate else FRAMES_FPS))

    def frames(self) -> Iterator[VideoFrame]:
        """The clip's frames in order, decoded one at a time.

        Raises:
            VideoError: a frame that cannot be decoded or read, or a clip that yields no frame at all.
        """
        count = 0
        for frame in self.files_frames() if self.files is not None else self._decoded():
            count += 1
            yield frame
        if count == 0:
            raise VideoError(self.path, "no frames: the video stream decodes to no picture")

    def files_frames(self) -> Iterator[VideoFrame]:
        """The frames of a folder, ``1 / fps`` apart."""
        for index, file in enumerate(self.files or []):
            try:
                image = load_image(file)
            except ImageReadError as error:
                raise VideoError(file, f"frame {index} of {self.path}: {error.reason}") from None
            yield VideoFrame(index, index / self.fps, image)

    def _decoded(self) -> Iterator[VideoFrame]:
        """The frames of a video file; times from presentation timestamps, relative to the first frame."""
        index, first = 0, None
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    stamp = frame.time if frame.time is not None else index / self.fps
                    first = stamp if first is None else first
                    yield VideoFrame(index, float(stamp - first), rgb_tensor(frame.to_ndarray(format="rgb24")))
                    index += 1
        except (av.FFmpegError, OSError) as error:
            raise VideoError(self.path, f"cannot be decoded after frame {index} ({one_line(error)})") from None


def rgb_tensor(pixels: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div_(255.0)


__all__ = ["Clip", "FRAMES_FPS", "VIDEO_SUFFIXES", "VideoError", "VideoFrame", "frame_files", "is_video_file",
           "rgb_tensor"]
