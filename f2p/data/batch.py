"""The batch contract between the face data modules, the regressor and its callbacks.

Every item (and, collated, every batch) is a dict with these keys; shapes are per batch:

    image       (B, 3, S, S) aligned face crop, RGB in [0, 1]
    landmarks   (B, 68, 2) iBUG-68 landmarks in crop pixels
    confidence  (B, 68) landmark weights in [0, 1]
    face_mask   (B, 1, S, S) soft skin-region mask (``f2p.perception.masks.face_region_mask``)
    to_photo    (B, 2, 3) crop pixels -> photo pixels (the identity for synthetic images)
    index       (B,) long, position of the item in its dataset
    name        list of B str, the item's output folder name for ``predict``
    source      list of B str, where the landmarks came from (detector name, or "synthetic")

and optionally:

    params      {group: (B, K)} ground-truth scene parameters (synthetic images)
    embedding   (B, D) identity embedding of the photo (photos prepared with embeddings)
    path        list of B str, the photo file (photos)
    dense       (B, 468, 2) MediaPipe face-mesh points in crop pixels (zeros where a photo has none)
    dense_confidence  (B, 468) their confidences (0 where a photo has none)
"""

from __future__ import annotations

from torch import Tensor

from f2p.scene.observations import Observations

IMAGE, LANDMARKS, CONFIDENCE, FACE_MASK, TO_PHOTO = "image", "landmarks", "confidence", "face_mask", "to_photo"
INDEX, NAME, SOURCE, PARAMS, EMBEDDING, PATH = "index", "name", "source", "params", "embedding", "path"
DENSE, DENSE_CONFIDENCE = "dense", "dense_confidence"


def batch_observations(batch: dict, embedding: Tensor | None = None) -> Observations:
    """The ``Observations`` of a batch (dense points where the batch has them); ``embedding`` (B, D) replaces a
    missing ``batch["embedding"]``."""
    return Observations(image=batch[IMAGE], landmarks=batch[LANDMARKS], confidence=batch[CONFIDENCE],
                        face_mask=batch.get(FACE_MASK), embedding=batch.get(EMBEDDING, embedding),
                        dense=batch.get(DENSE), dense_confidence=batch.get(DENSE_CONFIDENCE))
