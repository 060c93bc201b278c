"""Sides of the aligned face crop, in pixels (torch-free, so that the command line's help can show them without
loading PyTorch; ``f2p.perception.crop`` makes the crops)."""

CROP_SIZE = 224
"""Default side of the aligned crop that is fitted."""
MIN_CROP_SIZE = 64
"""Smallest crop side a fit accepts: below it the face's features (eyes, lips) are a pixel or two."""
