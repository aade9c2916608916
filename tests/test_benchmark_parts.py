"""The benchmark's profile of the trigger view clocks functions by name: a rename in src/ must
fail here, in seconds, not in the middle of `make bench` (it did, after services.py was split)."""

from __future__ import annotations

from importlib import import_module


def test_every_part_the_trigger_profile_clocks_exists():
    from benchmarks.parts import PARTS, VIEWS

    for label, module, name in PARTS:
        assert callable(getattr(import_module(module), name, None)), f"{label}: {module}.{name}"
    for module, name in VIEWS:
        names = [getattr(p, "name", None) for p in import_module(module).urlpatterns]
        assert name in names, f"no URL pattern named {name!r} in {module}"
