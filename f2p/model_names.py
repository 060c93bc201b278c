"""Registry names of the face models, torch-free so that the command line's help can list them without loading
PyTorch (``f2p.morphable.registry`` finds and loads the models)."""

DEFAULT_MODEL = "ict"
"""The open default: ICT FaceKit (MIT)."""
PROCEDURAL = "procedural"
"""The tiny generated test face, which needs no files."""
MODEL_NAMES = ("ict", "sfm", "flame", "bfm", PROCEDURAL)
"""Every name ``load_model`` knows: one ``registry.SOURCES`` entry each, then ``PROCEDURAL``."""
