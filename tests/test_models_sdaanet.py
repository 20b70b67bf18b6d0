"""SDAANet end to end: parameter counts, shapes, D12 invariance, losses, gradients, bad inputs."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tests.helpers.networks import build

from sdaanet.config import CONF_DIR
from sdaanet.models import AUTHORS_KEY_PREFIXES, SDAANet, TrainOutput

pytestmark = pytest.mark.filterwarnings("ignore:backbone .* RANDOM weights")

# the shared/ folder beside the checkout (skipped where absent)
KEYS_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "state-dict-keys"
SMALL = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [9, 5, 3, 2]}


def tiny(**overrides) -> SDAANet:
    torch.manual_seed(0)
    return build({**SMALL, **overrides})


def episode(b=2, k=1, h=65, w=65, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, 3, h, w, generator=g)
    supports = torch.randn(b, k, 3, h, w, generator=g)
    masks = (torch.rand(b, k, h, w, generator=g) > 0.5).long()
    masks[:, :, :3] = 255
    query_mask = (torch.rand(b, h, w, generator=g) > 0.5).long()
    return query, supports, masks, query_mask


def count(model: SDAANet) -> int:
    return sum(p.numel() for p in model.learnable_parameters())


@pytest.mark.parametrize(
    ("backbone", "sdpm", "saam", "expected"),
    [
        ("resnet50", True, True, 21_341_261),
        ("resnet101", True, True, 21_341_261),
        ("vgg16_bn", True, True, 20_948_045),
        ("resnet50_deep", False, False, 10_817_034),
        ("resnet101", False, False, 10_817_034),
        ("vgg16_bn", False, False, 10_423_818),
        # Table IV switches: SDPM alone adds se_supp (33,088); SAAM alone adds simple_mask,
        # s_cls, q_maskgeneration (10,490,115) and one init_merge input channel (4 x 256)
        ("resnet50", True, False, 10_817_034 + 33_088),
        ("resnet50", False, True, 10_817_034 + 10_490_115 + 1_024),
    ],
)
def test_learnable_parameter_counts(backbone, sdpm, saam, expected):
    for shot in (1, 5):
        with torch.device("meta"):
            model = build({"backbone": backbone, "sdpm": sdpm, "saam": saam, "shot": shot})
        assert count(model) == expected
    assert all(p.requires_grad for p in model.learnable_parameters())


@pytest.mark.parametrize("name", ["sdaanet_resnet50", "pfenet_resnet101"])
def test_authors_keys_map_one_to_one(name):
    path = KEYS_DIR / f"{name}.txt"
    if not path.exists():
        pytest.skip("authors' key lists not available")
    on = name.startswith("sdaanet")
    backbone = name.split("_")[1] + ("" if on else "_deep")
    with torch.device("meta"):
        ours = build({"backbone": backbone, "sdpm": on, "saam": on}).state_dict()
    seen = set()
    for line in path.read_text().splitlines():
        key, shape = line.split()
        key = key.removeprefix("module.")
        prefix = next(p for p in AUTHORS_KEY_PREFIXES if key.startswith(p))
        mapped = AUTHORS_KEY_PREFIXES[prefix] + key[len(prefix) :]
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        assert tuple(ours[mapped].shape) == dims, key
        seen.add(mapped)
    assert seen == set(ours)


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet50_deep", "vgg16_bn"]
)
def test_eval_output_shape_every_backbone(name):
    model = tiny(backbone=name).eval()
    q, s, m, _ = episode(b=1, h=65, w=65)
    with torch.no_grad():
        out = model(q, s, m)
    assert out.shape == (1, 2, 65, 65) and torch.isfinite(out).all()


def test_build_from_hydra_yaml_and_paper_ppm():
    node = OmegaConf.load(CONF_DIR / "model/sdaanet.yaml")
    del node["defaults"]  # Hydra's: picks a dataset's own decoder bins (model/ppm_scales/)
    root = OmegaConf.create(
        {
            "backbone": {
                "_target_": "sdaanet.models.build_backbone",
                "name": "resnet18",
                "weights": None,
                "freeze_bn": False,
            },
            "shot": 2,
            "model": node,
        }
    )
    root.model.reduce_dim = 16
    model = instantiate(root.model)
    assert model.shot == 2 and model.backbone.name == "resnet18"
    q, s, m, _ = episode(b=1, k=2, h=97, w=97)
    with torch.no_grad():
        assert model.eval()(q, s, m).shape == (1, 2, 97, 97)


def test_eval_is_bitwise_independent_of_query_mask():
    model = tiny(shot=2).eval()
    q, s, m, qm = episode(b=2, k=2)
    with torch.no_grad():
        ref = model(q, s, m)
        for mask in (qm, torch.zeros_like(qm), torch.randint(0, 7, qm.shape)):
            assert torch.equal(model(q, s, m, mask), ref)
        assert torch.equal(model(q, s, m, query_mask=None), ref)


@pytest.mark.parametrize(
    ("teacher", "strategy", "reweight"),
    [
        ("code", "official", "code"),
        ("code", "separate", "paper"),
        ("paper", "integral", "code"),
        ("paper", "separate", "paper"),
    ],
)
def test_train_losses_finite_and_gradients(teacher, strategy, reweight):
    model = tiny(teacher=teacher, kshot_strategy=strategy, query_reweight=reweight).train()
    q, s, m, qm = episode(b=2, k=2)
    out = model(q, s, m, qm)
    assert isinstance(out, TrainOutput) and out.logits.shape == (2, 2, 65, 65)
    for term in (out.losses["main"], out.losses["aux"], out.losses["kd"], out.losses["saam"]):
        assert term.dim() == 0 and torch.isfinite(term)
    assert out.losses["kd"] > 0 and out.losses["saam"] > 0
    (
        out.losses["main"] + out.losses["aux"] + 50 * out.losses["kd"] + 0.5 * out.losses["saam"]
    ).backward()
    for module in (model.down_query, model.down_supp, model.sdpm.se_supp, model.saam.simple_mask):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())


def test_kd_alone_reaches_down_query_and_se_supp():
    model = tiny().train()
    model(*episode()).losses["kd"].backward()
    assert model.down_query[0].weight.grad.abs().sum() > 0  # through the teacher (D3)
    assert model.sdpm.se_supp[2].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("sdpm", "saam"), [(False, False), (True, False), (False, True)])
def test_switch_combinations_run(sdpm, saam):
    model = tiny(sdpm=sdpm, saam=saam).train()
    out = model(*episode())
    assert (out.losses["kd"] != 0) == sdpm and (out.losses["saam"] != 0) == saam
    assert (model.sdpm is not None) == sdpm and (model.saam is not None) == saam
    with torch.no_grad():
        assert model.eval()(*episode()[:3]).shape == (2, 2, 65, 65)


def test_odd_input_sizes():
    model = tiny()
    q, s, m, qm = episode(b=2, h=100, w=77)
    assert model.train()(q, s, m, qm).logits.shape == (2, 2, 100, 77)
    with torch.no_grad():
        assert model.eval()(q, s, m).shape == (2, 2, 100, 77)
    prior = model.prior(q, s, m)
    assert prior.shape == (2, 1, 100, 77) and prior.min() >= 0 and prior.max() <= 1


def test_prior_is_training_free_and_normalised():
    model = tiny().eval()
    q, s, m, _ = episode(b=2, k=2)
    prior = model.prior(q, s, m)  # the mean over shots of per-shot [0,1] maps
    assert prior.shape == (2, 1, 65, 65) and not prior.requires_grad
    assert prior.min() >= 0 and prior.max() <= 1
    flat = model.prior(q, s[:, :1], m[:, :1]).flatten(1)  # 1-shot: min 0, max 1 per image
    torch.testing.assert_close(flat.max(1).values, torch.ones(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(2), atol=1e-3, rtol=0)


def test_all_zero_support_mask_warns_and_stays_finite():
    model = tiny()
    q, s, m, qm = episode()
    m = torch.zeros_like(m)
    with pytest.warns(UserWarning, match="no foreground"):
        out = model.train()(q, s, m, qm)
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(t).all() for t in out.losses.values())
    with pytest.warns(UserWarning, match="no foreground"), torch.no_grad():
        assert torch.isfinite(model.eval()(q, s, m)).all()


def test_train_mode_requires_query_mask():
    q, s, m, _ = episode()
    with pytest.raises(ValueError, match="query_mask"):
        tiny().train()(q, s, m)


def test_learnable_parameters_exclude_backbone():
    model = tiny()
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    assert not backbone_ids & {id(p) for p in model.learnable_parameters()}


@pytest.mark.parametrize(
    ("mutate", "arg"),
    [
        (lambda q, s, m, qm: (q[0], s, m, qm), "query"),
        (lambda q, s, m, qm: (q, s[:, 0], m, qm), "support_images"),
        (lambda q, s, m, qm: (q, s, m[:, 0], qm), "support_masks"),
        (lambda q, s, m, qm: (q, torch.cat([s, s], 1), m, qm), "support_masks"),
        (lambda q, s, m, qm: (q, s, m * 2, qm), "support_masks"),
        (lambda q, s, m, qm: (q, s, m, qm * 3), "query_mask"),
        (lambda q, s, m, qm: (q, s, m, qm[0]), "query_mask"),
        (lambda q, s, m, qm: (q[..., :64], s, m, qm[..., :64]), "query"),
        (lambda q, s, m, qm: (q, s[..., :60, :], m[..., :60, :], qm), "support_images"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(mutate, arg):
    model = tiny().train()
    with pytest.raises(ValueError, match=arg):
        model(*mutate(*episode()))


def test_bad_config_values():
    with pytest.raises(ValueError, match="kshot_strategy"):
        tiny(kshot_strategy="mean")
    with pytest.raises(ValueError, match="teacher"):
        tiny(teacher="student")


def test_freeze_bn_keeps_backbone_bn_eval_under_model_train():
    model = tiny(backbone={"name": "resnet18", "weights": None, "freeze_bn": True}).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    assert model.saam.simple_mask[2].bottleneck[1].training  # learnable BNs still train
    free = tiny().train()  # default freeze_bn=false: backbone BNs follow train() (D14)
    assert all(m.training for m in free.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
