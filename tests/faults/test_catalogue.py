"""docs/reliability.md is the catalogue of the suite, not a copy of it: it must match exactly.

Every test that carries ``@case`` appears in the table with its outcome, and nothing else does;
the fault suite's own tests must all be in it. Regenerate with
``.venv/bin/python -m tests.reliability --write``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests import reliability


def test_the_reliability_doc_is_the_current_catalogue():
    cases = reliability.collect()
    expected = reliability.document(reliability.DOC.read_text(), cases)
    assert reliability.DOC.read_text() == expected, (
        "docs/reliability.md is out of date: run `.venv/bin/python -m tests.reliability --write`"
    )


def test_every_fault_suite_test_is_in_the_catalogue():
    listed = {c.test for c in reliability.collect()}
    folder = Path(__file__).parent
    missing = []
    for module in sorted(folder.glob("test_*.py")):
        tree = ast.parse(module.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                test = f"{module.relative_to(reliability.ROOT).as_posix()}::{node.name}"
                if test not in listed and module.name != Path(__file__).name:
                    missing.append(test)
    assert missing == [], f"fault-suite tests without @case: {missing}"


def test_every_area_has_cases_and_every_case_names_a_real_test():
    cases = reliability.collect()
    assert {c.area for c in cases} == set(reliability.AREAS)
    for c in cases:
        path, name = c.test.split("::")
        assert f"def {name}(" in (reliability.ROOT / path).read_text(), c.test
