"""The network's numbers are pinned: logits and loss terms of tiny networks with fixed weights
and inputs (`tests/golden/outputs.pt`, written by `python -m tests.helpers.golden`) at 1e-6."""

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
        torch.testing.assert_close(got[name], expected, rtol=0, atol=1e-6, msg=f"{case} {name}")
