"""The network's numbers are pinned: logits and loss terms of tiny networks with fixed weights
and inputs (`tests/golden/outputs.pt`, written by `python -m tests.helpers.golden`) within 1e-5
(absolute and relative): fp32 kernels differ in the last bits between CPUs (AVX2 vs AVX-512:
up to 1.4e-5 on these logits), a change to the network moves them by orders of magnitude more."""

import pytest
import torch
from tests.helpers.golden import CASES, GOLDEN, outputs
from tests.helpers.networks import build


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_the_golden_file(case, golden):
    cfg = CASES[case]
    got = outputs(build(cfg), case, cfg.get("ways", 1), cfg.get("shot", 1))
    assert set(got) == set(golden[case])
    for name, expected in golden[case].items():
        torch.testing.assert_close(got[name], expected, rtol=1e-5, atol=1e-5, msg=f"{case} {name}")
