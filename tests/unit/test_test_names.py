"""Every test module has a basename of its own: pytest imports them by basename
(rootdir-relative "prepend" mode), so two `test_x.py` in different tiers stop the
whole run at collection — which a merge of two branches did twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
