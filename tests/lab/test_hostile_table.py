"""The hostile-input table itself (no lab needed): at least 100 cases, every surface, unique names,
canaries in most of them. The table is run against the lab by tests/lab/test_hostile_inputs.py."""

from __future__ import annotations

from tests.lab.hostile_table import TABLE, fill


def test_the_table_is_big_and_covers_every_surface() -> None:
    assert len(TABLE) >= 100
    assert {c.surface for c in TABLE} == {"slash", "http", "button", "fix", "config", "cluster"}
    assert len({(c.surface, c.name) for c in TABLE}) == len(TABLE), "case names must be unique"
    assert sum("<canary>" in repr(c.value) for c in TABLE) >= 40


def test_fill_puts_lab_values_into_every_kind_of_template() -> None:
    context = {"node": "n1", "canary": "touch /tmp/m"}
    assert fill({"<node>": ["<canary>", b"x<node>"]}, context) == {"n1": ["touch /tmp/m", b"xn1"]}
