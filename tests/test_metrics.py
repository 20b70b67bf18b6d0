"""Class-mIoU and FB-IoU against hand-computed values."""

import pytest
import torch

from sdaanet.metrics import ClassMIoU, FBIoU, episode_counts


def _episode(pred_rows: list[list[int]], target_rows: list[list[int]]):
    return torch.tensor([pred_rows]), torch.tensor([target_rows])


def test_episode_counts_ignores_void_pixels():
    # target: fg at (0,0),(0,1); void at (1,1). pred: fg at (0,1),(1,0),(1,1)
    pred, target = _episode([[0, 1], [1, 1]], [[1, 1], [0, 255]])
    inter, union = episode_counts(pred, target)
    # fg: pred {(0,1),(1,0)} (void dropped), target {(0,0),(0,1)} -> I=1, U=3
    # bg: pred {(0,0)}, target {(1,0)} -> I=0, U=2
    assert inter.tolist() == [[0, 1]]
    assert union.tolist() == [[2, 3]]


def test_class_miou_sums_over_episodes_before_dividing():
    metric = ClassMIoU(n_classes=2)
    # class 0, episode A: fg I=1, U=2 ; episode B: fg I=3, U=4 -> 4/6
    metric.update(*_episode([[1, 1, 0, 0]], [[1, 0, 0, 0]]), torch.tensor([0]))
    metric.update(*_episode([[1, 1, 1, 0]], [[1, 1, 1, 1]]), torch.tensor([0]))
    # class 1: I=0, U=1 -> 0
    metric.update(*_episode([[0, 0, 0, 0]], [[0, 0, 0, 1]]), torch.tensor([1]))
    assert metric.per_class().tolist() == pytest.approx([4 / 6, 0.0])
    assert metric.compute().item() == pytest.approx((4 / 6 + 0.0) / 2)
    # the mean of per-episode IoUs would differ: (1/2 + 3/4)/2 for class 0
    assert metric.per_class()[0].item() != pytest.approx((0.5 + 0.75) / 2)


def test_class_miou_leaves_undrawn_classes_out_and_rejects_bad_index():
    metric = ClassMIoU(n_classes=5)
    metric.update(*_episode([[1, 0]], [[1, 0]]), torch.tensor([2]))  # IoU 1
    metric.update(*_episode([[1, 1]], [[1, 0]]), torch.tensor([4]))  # IoU 1/2
    per_class = metric.per_class()
    assert per_class[[2, 4]].tolist() == [pytest.approx(1.0), pytest.approx(0.5)]
    assert per_class[[0, 1, 3]].isnan().all()  # never drawn
    assert metric.compute().item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="class_index"):
        metric.update(*_episode([[1, 0]], [[1, 0]]), torch.tensor([5]))


def test_fbiou_uses_summed_background_and_foreground_counts():
    metric = FBIoU()
    metric.update(*_episode([[1, 1, 0, 0]], [[1, 0, 0, 0]]))  # fg 1/2, bg 2/3
    metric.update(*_episode([[0, 0, 0, 0]], [[0, 0, 0, 1]]))  # fg 0/1, bg 3/4
    fg = (1 + 0) / (2 + 1)
    bg = (2 + 3) / (3 + 4)
    assert metric.compute().item() == pytest.approx((fg + bg) / 2)
