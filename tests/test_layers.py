"""Every generic check of tests/harness.py over every row of tests/cases.py."""

from __future__ import annotations

import pytest

import harness
from cases import CASES


@pytest.mark.parametrize("check", harness.CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer(case, check):
    check(case)
