"""Hypothesis example counts that follow the active profile (registered in tests/conftest.py).

A test that asks for its own count (``@settings(max_examples=400)``) would override the profile
and run 400 examples on a laptop too. It asks for ``examples(400)`` instead: all 400 under the
thorough ``ci`` profile, the same share of a smaller profile's count elsewhere (40 under ``dev``).
"""

from __future__ import annotations

from hypothesis import settings


def examples(thorough: int) -> int:
    """``thorough`` under the ``ci`` profile, scaled to the active profile's max_examples."""
    share = settings.default.max_examples / settings.get_profile("ci").max_examples
    return max(1, round(thorough * share))
