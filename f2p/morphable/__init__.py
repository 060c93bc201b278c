"""Morphable face models: named parameters in, meshes (metres) out."""

from f2p.morphable.base import LinearModelData, LinearMorphableModel, MeshOutput, ModelFileError, MorphableModel, ParamGroup
from f2p.morphable.npz import save_model
from f2p.morphable.registry import MODEL_NAMES, ModelNotFoundError, load_model

__all__ = ["MODEL_NAMES", "LinearModelData", "LinearMorphableModel", "MeshOutput", "ModelFileError", "ModelNotFoundError",
           "MorphableModel", "ParamGroup", "load_model", "save_model"]
