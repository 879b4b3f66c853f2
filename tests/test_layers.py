"""Every generic check of ``lateinit.testing`` over every row of tests/cases.py."""

from __future__ import annotations

import pytest

from cases import CASES
from lateinit.testing import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer(case, check):
    check(case)
