import albumentations as A
import cv2
import numpy as np
import pytest

from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
STD = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]


def sample(h=50, w=70):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    label = np.zeros((h, w), dtype=np.uint8)
    label[10:30, 20:50] = 1
    label[0, :] = 255
    return image, label


def test_val_is_warp_resize_and_imagenet_normalisation():
    image, label = sample()
    img, mask = build_transform("val", 33)(image, label, seed=123)
    assert img.shape == (3, 33, 33) and img.dtype == np.float32
    assert mask.shape == (33, 33) and mask.dtype == np.int64
    resized = cv2.resize(image.astype(np.float32) / 255, (33, 33), interpolation=cv2.INTER_LINEAR)
    expected = (resized.transpose(2, 0, 1) - MEAN) / STD
    np.testing.assert_allclose(img, expected, atol=1e-4)
    np.testing.assert_array_equal(
        mask, cv2.resize(label, (33, 33), interpolation=cv2.INTER_NEAREST)
    )
    same = build_transform("val", 33)(image, label, seed=9)
    np.testing.assert_array_equal(img, same[0])


def test_train_recipe_is_seeded_and_varied():
    image, label = sample()
    t = build_transform("train", 41)
    outs = [t(image, label, seed=s) for s in range(24)]
    for s in (0, 5):
        again = t(image, label, seed=s)
        np.testing.assert_array_equal(outs[s][0], again[0])
        np.testing.assert_array_equal(outs[s][1], again[1])
    for img, mask in outs:
        assert img.shape == (3, 41, 41) and mask.shape == (41, 41)
        assert set(np.unique(mask).tolist()) <= {0, 1, 255}
    # the same recipe without its flip (the last step, so the earlier steps draw as before):
    # each output is that one's, either as it is or flipped left-right by hand
    unflipped = build_transform("train", 41)
    flip = unflipped.pipeline.transforms[-1]
    assert isinstance(flip, A.HorizontalFlip)
    flip.p = 0.0
    flipped = []
    for s, (img, mask) in enumerate(outs):
        plain_img, plain_mask = unflipped(image, label, seed=s)
        assert not np.array_equal(plain_mask, plain_mask[:, ::-1])  # a flip shows
        flipped.append(np.array_equal(mask, plain_mask[:, ::-1]))
        if flipped[-1]:
            np.testing.assert_array_equal(img, plain_img[:, :, ::-1])
        else:
            np.testing.assert_array_equal(img, plain_img)
            np.testing.assert_array_equal(mask, plain_mask)
    assert 0 < sum(flipped) < 24
    # rotation fills the corners: label 255, image = ImageNet mean (0 after normalisation)
    rotated = [m[-1, -1] == 255 and np.allclose(i[:, -1, -1], 0, atol=0.05) for i, m in outs]
    assert 0 < sum(rotated) < 24
    assert len({m.tobytes() for _, m in outs}) > 4
    # steps draw independently (albumentations' set_random_seed would tie them together)
    assert {(f, r) for f, r in zip(flipped, rotated, strict=True)} != {(True, True), (False, False)}


def test_val_pad_is_the_authors_test_resize():
    image, label = sample(400, 600)
    img, mask = build_transform("val_pad", 473)(image, label)
    assert img.shape == (3, 473, 473)
    # longer side -> 473, sides floored to multiples of 8: 312 x 472, pasted top-left
    assert (mask[312:] == 255).all() and (mask[:, 472:] == 255).all()
    assert mask[0, 0] == 255 and (mask[:312, :472] != 255).any()
    np.testing.assert_allclose(img[:, 400, 100], (-MEAN / STD)[:, 0, 0], atol=1e-5)
    small_img, small_mask = build_transform("val_pad", 473)(*sample(50, 70))
    assert (small_mask[:50, :70] == sample(50, 70)[1]).all() and (small_mask[50:] == 255).all()


def test_unknown_recipe():
    with pytest.raises(ValueError, match="unknown transform recipe"):
        build_transform("paper", 33)


def test_val_paper_keeps_the_aspect_and_pads_zero_with_ignore_labels():
    image, label = sample(50, 70)
    img, mask = build_transform("val_paper", 35)(image, label)
    # longer side 70 -> 35: 25 x 35, pasted top-left; the rest is raw 0 / label 255
    assert img.shape == (3, 35, 35) and mask.shape == (35, 35)
    assert (mask[25:] == 255).all() and (mask[:25] != 255).any()
    expected = cv2.resize(label, (35, 25), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(mask[:25], expected)
    np.testing.assert_allclose(img[:, 30, 5], (-MEAN / STD)[:, 0, 0], atol=1e-5)
    # smaller images are scaled up (unlike the authors' val_pad)
    _, up = build_transform("val_paper", 140)(image, label)
    assert (up[:100, :140] != 255).any() and (up[100:] == 255).all()


def test_train_paper_crops_keep_the_foreground_and_pad_with_mean_and_ignore():
    image, label = sample(50, 70)
    t = build_transform("train_paper", 41)
    kept = []
    for seed in range(20):
        img, mask = t(image, label, seed=seed)
        assert img.shape == (3, 41, 41) and set(np.unique(mask).tolist()) <= {0, 1, 255}
        kept.append((mask == 1).sum())
    # the 20x30 object (600 px at scale 1) is kept at >= 85% in every crop
    assert min(kept) >= 0.85 * 600 * 0.9**2
    small_image, small_label = sample(20, 30)
    img, mask = t(small_image, small_label, seed=3)
    # a small image is padded (centred) to 41: the border is label 255 and the mean (0 after
    # normalisation), the object survives whole
    assert (mask[0] == 255).all() and (mask[:, 0] == 255).all()
    np.testing.assert_allclose(img[:, 0, 0], 0, atol=1e-5)
    assert (mask == 1).sum() > 0
    again = t(small_image, small_label, seed=3)
    np.testing.assert_array_equal(img, again[0])


def test_original_size_label_survives_any_recipe():
    from sdaanet.data.episodes import EpisodeDataset
    from sdaanet.data.sources.synthetic import SyntheticSource

    src = SyntheticSource("val", num_images=120, image_size=70)
    for recipe in ("val", "val_pad", "val_paper"):
        ds = EpisodeDataset(
            src, [1, 2, 3, 4, 5], 1, build_transform(recipe, 33), min_area=64, episodes=3,
            return_raw_label=True,
        )  # fmt: skip
        item = ds[1]
        _, label = src.load(ds.plan(1).query)
        assert item["raw_query_mask"].shape == label.shape == (70, 70)
        assert item["query_mask"].shape == (33, 33)
