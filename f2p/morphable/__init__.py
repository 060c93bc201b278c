"""Morphable face models: named parameters in, meshes (metres) out."""

from f2p.morphable.base import LinearModelData, LinearMorphableModel, MeshOutput, ModelFileError, MorphableModel, ParamGroup

__all__ = ["LinearModelData", "LinearMorphableModel", "MeshOutput", "ModelFileError", "MorphableModel", "ParamGroup"]
