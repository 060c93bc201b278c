"""``reconstruct``'s clips: which inputs are clips, their options, and the call into ``pipeline.video_run``.

A video file (``perception.video.VIDEO_SUFFIXES``) is always a clip; a folder is a clip of its frames (image files
sorted by name) only with ``--video``, else a folder of photos as before.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from f2p.pipeline.video_run import ClipOptions
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec

log = logging.getLogger("f2p")


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clips (video files, or folders of frames with --video)")
    group.add_argument("--video", action="store_true",
                       help="read each folder input as one clip whose frames are its image files sorted by name "
                            "(video files are clips without it)")
    group.add_argument("--fps", type=float, default=None,
                       help="frame rate of a folder of frames (default 30), or of a video file that records none")
    group.add_argument("--smooth", type=float, default=1.0, metavar="SIGMA",
                       help="temporal smoothing of pose and expression: a zero-phase Gaussian's standard deviation "
                            "in frames (0: off; default 1)")
    group.add_argument("--keyframes", type=int, default=8,
                       help="frames fitted together for a clip's shared identity (default 8)")
    group.add_argument("--no-overlay", action="store_true", help="do not write a clip's overlay.mp4")


def split_clips(inputs: list[str], folders_are_clips: bool) -> tuple[list[Path], list[str]]:
    """The inputs that are clips (video files; folders too when ``folders_are_clips``), and the others."""
    from f2p.perception.video import is_video_file

    clips, others = [], []
    for item in inputs:
        path = Path(item)
        is_clip = is_video_file(path) and not path.is_dir() or folders_are_clips and path.is_dir()
        (clips.append(path) if is_clip else others.append(item))
    return clips, others


def run_clips(clips: list[Path], args: argparse.Namespace, spec: SceneSpec, renderer: MeshRenderer,
              settings: dict) -> dict[str, dict[str, str]]:
    """Fit every clip into ``args.out/<clip name>-<hash>/``; {clip path: summary.csv row}. A clip that fails
    (undecodable, no frames, no face, no detector) fails alone with one line."""
    from tqdm import tqdm

    from f2p.export.summary import summary_row
    from f2p.naming import output_name
    from f2p.perception.detectors import DETECTOR_NAMES, create_detector
    from f2p.pipeline.video_run import ClipRun, clip_line, detector_perceiver
    from f2p.quality import QUALITIES

    if not clips:
        return {}
    if args.smooth < 0 or args.keyframes < 1 or (args.fps is not None and args.fps <= 0):
        return _failed_all(clips, "--smooth must be >= 0, --keyframes >= 1 and --fps > 0")
    if args.quality not in QUALITIES:
        return _failed_all(clips, f"--quality {args.quality}: clips are fitted, use one of {', '.join(QUALITIES)}")
    if args.landmarks not in DETECTOR_NAMES:
        return _failed_all(clips, f"--landmarks {args.landmarks}: a clip needs a detector "
                                  f"({', '.join(DETECTOR_NAMES)}), not a landmark file")
    try:
        detector = create_detector(args.landmarks, device=str(spec.model.device))
    except (OSError, ValueError, RuntimeError) as error:
        return _failed_all(clips, f"--landmarks {args.landmarks}: {error}")
    run = ClipRun(spec, renderer, detector_perceiver(detector), clip_options(args), settings)
    rows = {}
    for clip in clips:
        outcome = run.process(clip, args.out / output_name(clip), args.fps)
        tqdm.write(clip_line(outcome))
        rows[str(clip)] = summary_row(outcome)
    return rows


def clip_options(args: argparse.Namespace) -> ClipOptions:
    """The ``ClipOptions`` of ``reconstruct``'s options: overlay.mp4 unless ``--no-overlay`` or ``--outputs data``
    (no pictures)."""
    from f2p.pipeline.video_run import ClipOptions

    return ClipOptions(quality=args.quality, smooth=args.smooth, keyframes=args.keyframes,
                       batch_size=args.batch_size, crop_size=args.crop_size,
                       overlay=not args.no_overlay and args.outputs == "all", sliding_contour=args.sliding_contour)


def _failed_all(clips: list[Path], reason: str) -> dict[str, dict[str, str]]:
    from f2p.export.photo import PhotoOutcome
    from f2p.export.summary import summary_row

    print(f"f2p reconstruct: {reason}")
    return {str(clip): summary_row(PhotoOutcome(str(clip), "failed", reason, {})) for clip in clips}
