"""Golden outputs: tiny SD-AANet / PFENet / multi-class networks with weights derived from their
parameter names (independent of construction order), fixed inputs, their logits and loss terms.

`python -m tests.helpers.golden` rewrites `tests/golden/outputs.pt`; do that only when a change
to the network is meant to change its numbers. `python -m tests.helpers.golden CASE ...` writes
only the named cases (e.g. a new one) and keeps the others as stored.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "outputs.pt"
SMALL = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [9, 5, 3, 2]}
CASES: dict[str, dict] = {
    "sdaanet_1shot": {**SMALL},
    "sdaanet_2shot": {**SMALL, "shot": 2},
    "pfenet_1shot": {**SMALL, "sdpm": False, "saam": False},
    "sdaanet_paper_integral_2shot": {
        **SMALL, "shot": 2, "teacher": "paper", "query_reweight": "paper",
        "kshot_strategy": "integral",
    },
    "multiclass_2way": {**SMALL, "multiclass": True, "ways": 2},
    "sdaanet_small_support_mask": {**SMALL},
}  # fmt: skip
# support masks of 3x3 pixels around (32, 32), the one layer-3 sample they hold (65 px -> 9,
# align_corners: every 8th pixel): a prototype's area is 1, so masked_gap's eps (`mask_eps`)
# moves the logits by ~5e-4, where the random masks (area ~36) leave it at the tolerance
SMALL_MASKS = {"sdaanet_small_support_mask"}


def seeded_state(net: nn.Module) -> dict[str, Tensor]:
    """Every float tensor of `net.state_dict()` drawn from a generator seeded by its name."""
    state = {}
    for name, t in net.state_dict().items():
        if not t.is_floating_point():
            state[name] = t.clone()
            continue
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        x = torch.randn(t.shape, generator=g)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            x = x.abs() * 0.5 + 0.5
        elif leaf == "running_mean" or leaf == "bias":
            x = x * 0.1
        elif t.dim() == 1:  # BN / norm weights, the evidence weights
            x = 1.0 + 0.1 * x
        else:
            x = x / max(t[0].numel(), 1) ** 0.5
        state[name] = x
    return state


def inputs(case: str, ways: int = 1, shot: int = 1) -> tuple[Tensor, ...]:
    """A 2-episode batch at 65 px: query, supports, support masks, query mask."""
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    b, h = 2, 65
    lead = (b, ways, shot) if ways > 1 else (b, shot)
    query = torch.randn(b, 3, h, h, generator=g)
    supports = torch.randn(*lead, 3, h, h, generator=g)
    masks = (torch.rand(*lead, h, h, generator=g) > 0.5).long()
    if case in SMALL_MASKS:
        masks = torch.zeros_like(masks)
        masks[..., 31:34, 31:34] = 1
    masks[..., :3, :] = 255
    query_mask = torch.randint(0, ways + 1, (b, h, h), generator=g)
    query_mask[:, -2:] = 255
    return query, supports, masks, query_mask


def outputs(net: nn.Module, case: str, ways: int = 1, shot: int = 1) -> dict[str, Tensor]:
    """Eval logits and train-mode logits + loss terms (dropout off, BN in train mode)."""
    query, supports, masks, query_mask = inputs(case, ways, shot)
    net.load_state_dict(seeded_state(net))
    net.eval()
    out = {"eval_logits": net(query, supports, masks).detach()}
    net.train()
    for m in net.modules():
        if isinstance(m, nn.Dropout2d | nn.Dropout):
            m.eval()
    train = net(query, supports, masks, query_mask)
    out["train_logits"] = train.logits.detach()
    for term in ("main", "aux", "kd", "saam"):
        out[term] = train.losses[term].detach()
    return out


def write(cases: Sequence[str] = ()) -> None:
    """Write the outputs of `cases` (every case when none is named), keeping the others."""
    from tests.helpers.networks import build

    results = torch.load(GOLDEN, weights_only=True) if cases else {}
    for case in cases or CASES:
        cfg = CASES[case]
        results[case] = outputs(build(cfg), case, cfg.get("ways", 1), cfg.get("shot", 1))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    torch.save(results, GOLDEN)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    write(sys.argv[1:])
