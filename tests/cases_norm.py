"""Layer cases of the norm family (rows of the table in cases.py)."""

from __future__ import annotations

from cases import LayerCase

CASES: list[LayerCase] = []
