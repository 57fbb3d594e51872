"""The README's reliability table lists every scenario of issue 11 with zero failures and zero
rows lost, as measured by the suite (see scenarios.py)."""

from __future__ import annotations

import re

from tests.reliability.scenarios import END, README, SCENARIOS, START, results


def _rows() -> dict[str, tuple[int, int, int]]:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "the README lacks the reliability table markers"
    table = text.split(START, 1)[1].split(END, 1)[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"\| *\S+ *\|.*\(`([a-z-]+)`\) *\| *(\d+) *\| *(\d+) *\| *(\d+) *\|", line)
        if m:
            rows[m[1]] = (int(m[2]), int(m[3]), int(m[4]))
    return rows


def test_the_readme_table_lists_every_scenario_with_nothing_lost() -> None:
    rows = _rows()
    assert list(rows) == list(SCENARIOS)
    for slug, (tries, failures, lost) in rows.items():
        assert tries > 0 and failures == 0 and lost == 0, slug


def test_the_readme_table_matches_the_last_measured_results() -> None:
    """Results on disk (from this or an earlier run of the scenarios) agree with the README:
    regenerate it with `python -m tests.reliability.scenarios` when they change."""
    rows = _rows()
    for slug, r in results().items():
        assert r["failures"] == 0 and r["rows_lost"] == 0, (slug, r)
        assert rows[slug][1:] == (0, 0), slug
