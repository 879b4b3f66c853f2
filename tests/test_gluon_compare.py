"""Gluon training code gives MXNet 1.9.1's numbers (docs/gluon.md, "Training as in Gluon").

The reference values were printed by MXNet 1.9.1 running the same code
(``benchmarks/gluon_compare.py --mxnet-python ...``, which reruns the comparison where
MXNet is installed); MXNet is not a test dependency."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

MXNET_1_9_1 = {
    "write": [0.8999999761581421, 0.7999999523162842, 0.6999999284744263],
    "add": [0.8999999761581421, 0.699999988079071, 0.3999999761581421],
    "sgd": [
        [0.1827000081539154, -0.11355000734329224, 0.28949999809265137, 0.09995000064373016],
        [0.1490575671195984, -0.1403500884771347, 0.2682130038738251, 0.1948050558567047],
        [0.09935874491930008, -0.180941641330719, 0.23483438789844513, 0.329979807138443],
        [0.03355466574430466, -0.23629704117774963, 0.18752670288085938, 0.4907439649105072],
        [-0.04793114960193634, -0.30683690309524536, 0.1250782161951065, 0.6603864431381226],
    ],
    "shapes": [[[256, 0], [256], [10, 0], [10]], [[256, 20], [256], [10, 256], [10]]],
}


def _lateinit_cases():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gluon_compare.py"
    spec = importlib.util.spec_from_file_location("gluon_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.lateinit_cases()


@pytest.mark.parametrize("case", ["write", "add", "sgd"])
def test_training_matches_mxnet_step_by_step(case):
    module, ours = _lateinit_cases()
    assert module._close(MXNET_1_9_1[case], ours[case]), (MXNET_1_9_1[case], ours[case])


def test_the_story_shapes_match_mxnet_with_minus_one_for_unknown():
    _, ours = _lateinit_cases()
    before, after = MXNET_1_9_1["shapes"]
    assert ours["shapes"][0] == [[-1 if d == 0 else d for d in s] for s in before]
    assert ours["shapes"][1] == after
