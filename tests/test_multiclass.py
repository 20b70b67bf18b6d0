"""Multi-class few-shot segmentation (Algorithm 1): shapes, labels, metric, fit, bad input."""

import pytest
import torch
from tests.helpers.networks import build

from sdaanet import compose_config
from sdaanet.build import build_datamodule
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.data.index import EpisodeIndex
from sdaanet.data.sources.synthetic import SyntheticSource
from sdaanet.data.transforms import build_transform
from sdaanet.errors import ConfigError, DataConfigError
from sdaanet.lit import FewShotSegmentationModule
from sdaanet.metrics import ClassMIoU, FBIoU
from sdaanet.models import MultiClassSDAANet
from sdaanet.references import prior_predictor
from sdaanet.train import run
from sdaanet.validate import check_config

S = 65
TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5], "multiclass": True}


def episode(ways, batch=2, shot=1):
    g = torch.Generator().manual_seed(0)
    query = torch.randn(batch, 3, S, S, generator=g)
    images = torch.randn(batch, ways, shot, 3, S, S, generator=g)
    masks = torch.zeros(batch, ways, shot, S, S, dtype=torch.int64)
    masks[..., 10:40, 10:40] = 1
    return query, images, masks


@pytest.mark.parametrize("ways", [2, 5])
def test_shapes_for_n_ways(ways):
    net = build({**TINY, "ways": ways})
    assert isinstance(net, MultiClassSDAANet)
    query, images, masks = episode(ways)
    label = torch.zeros(2, S, S, dtype=torch.int64)
    label[:, :20, :20] = ways  # the last support's class
    label[0, 40:, 40:] = 1
    label[:, -1] = 255
    net.train()
    out = net(query, images, masks, label)
    assert out.logits.shape == (2, ways + 1, S, S)
    assert all(torch.isfinite(t) and t.dim() == 0 for t in out.losses.values())
    assert out.losses["kd"] > 0 and out.losses["saam"] > 0
    net.eval()
    assert net(query, images, masks).shape == (2, ways + 1, S, S)
    assert net.decoder.cls[-1].out_channels == ways + 1


def test_two_way_model_on_a_query_holding_one_of_the_classes():
    net = build({**TINY, "ways": 2}).train()
    query, images, masks = episode(2)
    label = torch.zeros(2, S, S, dtype=torch.int64)
    label[:, 20:50, 20:50] = 2  # only the second support's class is in the queries
    out = net(query, images, masks, label)
    assert (
        torch.isfinite(out.losses["main"])
        and torch.isfinite(out.losses["kd"])
        and out.losses["kd"] > 0
    )
    # KD averages over the classes present: class 1 (absent) adds no term
    kd_two = net._distill(net.down_query(net.backbone.mid(query)[1]), [torch.ones(2, 16, 1, 1)],
                          label, 1)  # fmt: skip
    assert kd_two == []


def test_per_class_metric_of_n_way_episodes_against_hand_counts():
    miou, fb = ClassMIoU(5), FBIoU()
    # one 2-way episode: channel 1 = class index 3, channel 2 = class index 0
    target = torch.tensor([[[1, 1, 2, 0, 255]]])
    preds = torch.tensor([[[1, 2, 2, 2, 1]]])
    miou.update(preds, target, torch.tensor([[3, 0]]))
    fb.update(preds, target)
    # class 3 (label 1): pred {0}, target {0,1} -> I 1, U 2; class 0 (label 2): pred {1,2,3},
    # target {2} -> I 1, U 3; ignore pixel 4 dropped
    per_class = miou.per_class()
    assert per_class[3].item() == pytest.approx(1 / 2)
    assert per_class[0].item() == pytest.approx(1 / 3)
    assert per_class[[1, 2, 4]].isnan().all()
    assert miou.compute().item() == pytest.approx((1 / 2 + 1 / 3) / 2)
    # FB-IoU: fg = any class: pred fg {0,1,2,3}, target fg {0,1,2} -> 3/4; bg: pred {} vs {3} -> 0
    assert fb.compute().item() == pytest.approx((3 / 4 + 0) / 2)


def test_one_batch_fit_and_test_in_multiclass_mode(tmp_path):
    cfg = compose_config(
        ["debug=tiny", "data.ways=3", "model=multiclass", f"paths.output_dir={tmp_path}",
         "test=true"]
    )  # fmt: skip
    metrics = run(cfg)
    assert 0 <= metrics["test/class_miou"] <= 1
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    network = ckpt["hyper_parameters"]["description"]["network"]
    assert network["_target_"] == "sdaanet.models.MultiClassSDAANet" and network["ways"] == 3
    assert ckpt["state_dict"]["net.decoder.cls.3.weight"].shape[0] == 4  # N+1 channels


def test_bad_multiclass_input_gives_clear_errors(tmp_path):
    net = build({**TINY, "ways": 2}).train()
    query, images, masks = episode(2)
    label = torch.zeros(2, S, S, dtype=torch.int64)
    label[0, :10, :10] = 3
    with pytest.raises(ValueError, match=r"query_mask holds \[3\]; a 2-way label is 0..N or 255"):
        net(query, images, masks, label)
    # a query that holds none of the classes (with >= min_area pixels) is refused when planned
    src = SyntheticSource("val", num_images=8, image_size=64)
    index = EpisodeIndex(
        classes=(1, 2), queries=(0,), query_classes=((1,),), class_images={1: (1, 2), 2: (3, 4)},
        excluded={},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"synthetic/val/seed0/0: the query holds no class"):
        EpisodeDataset(src, [1, 2], 1, build_transform("val", 33), ways=2, index=index)
    with pytest.raises(ValueError, match=r"support_images must have shape \(B,N=2,K,3,H,W\)"):
        net(query, images[:, :1], masks[:, :1], label)
    module = FewShotSegmentationModule(net, n_test_classes=5)
    batch = {"class_id": torch.tensor([[3, 4], [2, 2]])}
    with pytest.raises(ValueError, match=r"episode 1 of the batch has two supports of the same"):
        module.check_episodes(batch)
    cfg = compose_config(["debug=tiny", "data.ways=6", "model=multiclass"])
    with pytest.raises(DataConfigError, match="ways=6 but fold 0 has only 5 novel classes"):
        build_datamodule(cfg)
    with pytest.raises(ValueError, match="a multi-class model needs ways >= 2, got 1"):
        build({**TINY, "ways": 1})
    with pytest.raises(ConfigError, match=r"data.ways=3 needs the multi-class network: add model"):
        check_config(compose_config(["debug=tiny", "data.ways=3"]))
    with pytest.raises(
        ConfigError, match=r"model=multiclass needs data.ways >= 2, got data.ways=1"
    ):
        check_config(compose_config(["debug=tiny", "model=multiclass"]))


def test_class_evidence_ties_each_prior_and_attention_map_to_its_own_channel():
    net = build({**TINY, "ways": 2})
    with torch.no_grad():
        net.evidence.copy_(torch.tensor([2.0, 3.0]))  # (prior weight, attention weight)
    priors = [torch.full((1, 1, 2, 2), 0.2), torch.full((1, 1, 2, 2), 0.7)]
    attentions = [torch.full((1, 1, 2, 2), 0.1), torch.full((1, 1, 2, 2), 0.3)]
    evidence = net._class_evidence(priors, attentions)
    assert evidence.shape == (1, 3, 2, 2)
    # background 0; class n: 2 * prior_n + 3 * attention_n
    expected = [0.0, 2 * 0.2 + 3 * 0.1, 2 * 0.7 + 3 * 0.3]
    assert evidence[0, :, 0, 0].tolist() == pytest.approx(expected)
    swapped = net._class_evidence(priors[::-1], attentions[::-1])
    assert torch.equal(swapped[:, 1:], evidence[:, [2, 1]])  # the support order decides


def test_prior_reference_gives_each_pixel_the_class_of_its_highest_prior():
    class Priors:  # the class-n prior is the support image's first pixel value everywhere
        def eval(self):
            return self

        def prior(self, query, images, masks):
            return images[:, 0, :1, :1, :1].expand(-1, 1, *query.shape[-2:])

    query = torch.zeros(2, 3, 4, 4)
    images = torch.zeros(2, 3, 1, 3, 4, 4)
    images[0, :, 0, 0, 0, 0] = torch.tensor([0.2, 0.9, 0.6])  # class 2 wins
    images[1, :, 0, 0, 0, 0] = torch.tensor([0.3, 0.1, 0.4])  # none above 0.5: background
    batch = {"query_image": query, "support_images": images, "support_masks": images[:, :, :, 0]}
    pred = prior_predictor(Priors())(batch)
    assert pred.shape == (2, 4, 4)
    assert (pred[0] == 2).all() and (pred[1] == 0).all()
