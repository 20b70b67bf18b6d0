import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from sdaanet.data.sources.synthetic import (
    PALETTE,
    SHAPES,
    SYNTHETIC_CLASS_NAMES,
    TEXTURES,
    SyntheticSource,
    class_colours,
    class_shape_texture,
)

VALID_IDS = set(range(21)) | {255}


@pytest.fixture(scope="module")
def src():
    return SyntheticSource("train", seed=0, num_images=120, image_size=96)


def test_deterministic_per_seed_split_index(src):
    a_img, a_lab = src.render(7)
    b_img, b_lab = SyntheticSource("train", seed=0, num_images=120, image_size=96).load(7)
    assert a_img.dtype == np.uint8 and a_img.shape == (96, 96, 3)
    assert a_lab.dtype == np.uint8 and a_lab.shape == (96, 96)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, _ = SyntheticSource("train", seed=1, num_images=120, image_size=96).render(7)
    d_img, _ = SyntheticSource("val", seed=0, num_images=120, image_size=96).render(7)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_img, d_img)
    assert not np.array_equal(a_img, src.render(8)[0])


def test_classes_are_distinct_shape_texture_pairs():
    pairs = [class_shape_texture(c) for c in range(1, 21)]
    assert len(set(pairs)) == 20
    assert len(SYNTHETIC_CLASS_NAMES) == 20 == len(set(SYNTHETIC_CLASS_NAMES))
    # every shape and every texture is shared by two classes: neither alone names the class
    assert sorted(np.bincount([s for s, _ in pairs])) == [2] * len(SHAPES)
    assert sorted(np.bincount([t for _, t in pairs])) == [2] * len(TEXTURES)
    assert SYNTHETIC_CLASS_NAMES[0] == "striped-disc"


def test_labels_match_the_plan(src):
    n_distractor_images = n_single = 0
    for n in range(40):
        plan = src.plan(n)
        _, label = src.render(n)
        assert set(np.unique(label).tolist()) <= VALID_IDS
        assert len({i.class_id for i in plan}) == len(plan)  # one instance per class
        for inst in plan:
            own = src.instance_mask(inst)
            assert np.all(own[label == inst.class_id])  # class pixels only inside its instance
        main = plan[-1]  # drawn last: fully visible, apart from the void band
        own = src.instance_mask(main)
        np.testing.assert_array_equal(label == main.class_id, own & (label != 255))
        assert (label == main.class_id).sum() > 0.5 * own.sum()
        present = set(np.unique(label).tolist()) - {0, 255}
        n_distractor_images += len(present) >= 2
        n_single += len(present) == 1
    assert n_distractor_images >= 10 and n_single >= 5


def test_class_areas_match_labels(src):
    areas = src.class_areas()
    assert len(areas) == len(src)
    for n in (0, 5, 77):
        label = src.label(n)
        expected = {c: int((label == c).sum()) for c in np.unique(label) if c not in (0, 255)}
        assert areas[n] == expected
        np.testing.assert_array_equal(label, src.render(n)[1])


def _circularity(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 4 * np.pi * mask.sum() / perimeter**2


def test_shapes_differ_and_colours_are_shared():
    src = SyntheticSource("train", seed=0, num_images=400, image_size=128)
    base = src.plan(0)[-1]

    def mask(shape, angle):
        inst = replace(base, shape=shape, cx=64.0, cy=64.0, radius=40.0, angle=angle)
        return src.instance_mask(inst)

    # no two outlines coincide, whatever the rotation
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    for a in range(len(SHAPES)):
        ma = mask(a, 0.0)
        for b in range(a + 1, len(SHAPES)):
            best = max((ma & mb).sum() / (ma | mb).sum() for mb in (mask(b, t) for t in angles))
            assert best < 0.9, (SHAPES[a], SHAPES[b], best)
    # classes 1 and 2 (striped-disc, pinstriped-square): compactness tells them apart
    assert _circularity(mask(0, 0.3)) > 1.2 * _circularity(mask(1, 0.3))
    # colour is a hint, never the answer: every colour pair is owned by exactly two classes,
    # and two classes share at most one of shape, texture and colour pair
    used = {c: set() for c in range(1, 21)}
    for n in range(400):
        for inst in src.plan(n):
            used[inst.class_id].add(frozenset(inst.colors))
    assert all(len(pairs) == 1 for pairs in used.values())
    owners = {}
    for c, pairs in used.items():
        owners.setdefault(next(iter(pairs)), []).append(c)
    assert len(owners) == len(PALETTE) and all(len(v) == 2 for v in owners.values())
    cues = {c: (*class_shape_texture(c), class_colours(c)) for c in range(1, 21)}
    for a in range(1, 21):
        for b in range(a + 1, 21):
            assert sum(x == y for x, y in zip(cues[a], cues[b], strict=True)) <= 1, (a, b)


def test_same_shape_different_texture_gives_different_pixels():
    src = SyntheticSource("train", seed=0, num_images=10, image_size=96)
    base = replace(src.plan(3)[-1], cx=48.0, cy=48.0, radius=30.0, angle=0.0)
    a = replace(base, class_id=1, shape=0, texture=class_shape_texture(1)[1])
    b = replace(base, class_id=11, shape=0, texture=class_shape_texture(11)[1])
    img_a, lab_a = src.render_plan([a], np.random.default_rng(0))
    img_b, lab_b = src.render_plan([b], np.random.default_rng(0))
    np.testing.assert_array_equal(lab_a > 0, lab_b > 0)  # same outline
    inside = (lab_a == 1) & (lab_b == 11)
    assert inside.sum() > 500
    assert np.abs(img_a[inside].astype(int) - img_b[inside].astype(int)).sum(-1).mean() > 20


def test_void_band_and_size_options():
    no_void = SyntheticSource("val", seed=3, num_images=20, image_size=64, void_width=0)
    for n in range(20):
        _, label = no_void.render(n)
        assert 255 not in label
        assert label.shape == (64, 64)
    with pytest.raises(ValueError):
        SyntheticSource("holdout")
    with pytest.raises(IndexError):
        no_void.render(20)


def test_generation_is_cheap():
    src = SyntheticSource("train", seed=0, num_images=30, image_size=128)
    src.render(0)
    t = time.perf_counter()
    for n in range(30):
        src.render(n)
    assert (time.perf_counter() - t) / 30 < 0.05  # a few ms typically; generous for busy CPUs
