"""Identity embeddings of faces: dlib's face-recognition ResNet (and optionally ArcFace) in PyTorch."""

from f2p.perception.identity.arcface import ArcFaceEmbedder, extract_arcface_chips
from f2p.perception.identity.base import FaceEmbedder, identity_similarity
from f2p.perception.identity.chip import extract_dlib_face_chips
from f2p.perception.identity.dlib_format import ModelFileError
from f2p.perception.identity.embedder import DLIB_SAME_PERSON_DISTANCE, DlibFaceEmbedder, create_embedder

__all__ = [
    "ArcFaceEmbedder",
    "DLIB_SAME_PERSON_DISTANCE",
    "DlibFaceEmbedder",
    "FaceEmbedder",
    "ModelFileError",
    "create_embedder",
    "extract_arcface_chips",
    "extract_dlib_face_chips",
    "identity_similarity",
]
