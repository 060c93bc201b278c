"""Photo data for the regressor: stable splits, landmark-consistent flips, items from the prepare cache."""

import shutil
from pathlib import Path

import torch

from f2p.conventions import IBUG68_MIRROR, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from f2p.data import batch as keys
from f2p.data.faces import FaceImageDataModule, PhotoAugment, flip_item, in_validation
from f2p.naming import output_name
from f2p.perception.align import apply_affine
from f2p.perception.prepared import load_prepared, photo_key
from regressor_support import one_thread, write_annotation_cache  # noqa: F401 (autouse fixture)


def test_validation_split_is_stable_and_about_the_fraction():
    names = [f"photo_{i}.jpg" for i in range(2000)]
    chosen = [n for n in names if in_validation(Path("somewhere") / n, 0.1)]
    assert 0.08 < len(chosen) / len(names) < 0.12
    assert chosen == [n for n in names if in_validation(Path("elsewhere/deeper") / n, 0.1)]  # name only


def test_flip_mirrors_landmarks_and_keeps_the_photo_correspondence():
    S = 16
    landmarks = torch.rand(68, 2) * (S - 1)
    to_photo = torch.tensor([[2.0, 0.1, 5.0], [-0.1, 2.0, 3.0]])
    item = {keys.IMAGE: torch.rand(3, S, S), keys.FACE_MASK: torch.rand(1, S, S), keys.LANDMARKS: landmarks,
            keys.CONFIDENCE: torch.linspace(0, 1, 68), keys.TO_PHOTO: to_photo}
    flipped = flip_item(item)
    assert torch.equal(flipped[keys.IMAGE][..., 0], item[keys.IMAGE][..., -1])
    # the subject's right eye corner of the mirrored face is the mirrored left eye corner
    assert torch.allclose(flipped[keys.LANDMARKS][RIGHT_EYE_OUTER],
                          torch.stack([S - 1 - landmarks[LEFT_EYE_OUTER, 0], landmarks[LEFT_EYE_OUTER, 1]]))
    assert flipped[keys.CONFIDENCE][RIGHT_EYE_OUTER] == item[keys.CONFIDENCE][LEFT_EYE_OUTER]
    # every landmark still maps to the same photo point, partners swapped
    photo_points = apply_affine(to_photo[None], landmarks[None])[0]
    flipped_points = apply_affine(flipped[keys.TO_PHOTO][None], flipped[keys.LANDMARKS][None])[0]
    assert torch.allclose(flipped_points, photo_points[list(IBUG68_MIRROR)], atol=1e-4)
    twice = flip_item(flipped)
    assert all(torch.allclose(twice[k], item[k], atol=1e-5) for k in item)


def test_items_come_from_the_prepare_cache(tmp_path, faces_dir):
    photos = write_annotation_cache(faces_dir, tmp_path / "photos", tmp_path / "prepared")
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    module = FaceImageDataModule([str(tmp_path / "photos")], str(tmp_path / "prepared"), image_size=64,
                                 val_fraction=0.3, batch_size=2, augment=PhotoAugment(flip=True, color_jitter=0.1))
    module.prepare_data()  # every photo has a record: nothing to detect
    module.setup("fit")
    sizes = {split: len(data) for split, data in module.datasets.items()}
    assert sizes["train"] + sizes["val"] == len(photos) and min(sizes.values()) >= 1
    assert sizes["predict"] == len(photos)
    assert len(next(iter(module.train_dataloader()))[keys.NAME]) >= 1
    batch = next(iter(module.predict_dataloader()))
    assert batch[keys.IMAGE].shape == (2, 3, 64, 64) and batch[keys.FACE_MASK].shape == (2, 1, 64, 64)
    assert keys.EMBEDDING not in batch  # these records have no embeddings
    assert ((batch[keys.LANDMARKS] > 0) & (batch[keys.LANDMARKS] < 63)).all()  # the face is inside its crop
    item = module.datasets["predict"][0]
    photo_landmarks = apply_affine(item[keys.TO_PHOTO][None], item[keys.LANDMARKS][None])[0]
    record = load_prepared(tmp_path / "prepared")[photo_key(item[keys.PATH])]
    assert torch.allclose(photo_landmarks, record.faces[0].detection.landmarks, atol=1e-2)
    assert sorted(module.datasets["predict"].names) == sorted(output_name(p) for p in photos)


def test_photos_without_a_record_are_prepared_once(tmp_path, faces_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(faces_dir / "images" / "celeba_000002.jpg", photos)
    module = FaceImageDataModule([str(photos)], str(tmp_path / "prepared"), detector="dlib", embed=False)
    module.prepare_data()
    records = load_prepared(tmp_path / "prepared")
    assert list(records) == [photo_key(photos / "celeba_000002.jpg")]
    assert records[photo_key(photos / "celeba_000002.jpg")].faces[0].detection.landmarks.shape == (68, 2)
