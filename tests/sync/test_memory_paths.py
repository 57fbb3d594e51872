"""The memory-saving paths of the sync (issue 14, goal 3) change no value: the column-wise merge
of an incremental night equals concatenating and sorting, shared text is the same text, a
snapshot filled in place per row group reads back exactly, and `make bench` keeps the
separately measured 1,000,000-item section."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sp_sync.state import frames
from sp_sync.sync import engine
from sp_sync.sync.engine import _merge, _share_text


def _snapshot(ids: list[int], tag: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ID": pd.array(ids, dtype="int64"),
            "_version": pd.array([1 if tag == "old" else 2] * len(ids), dtype="int64"),
            "Count": pd.array([i if i % 3 else None for i in ids], dtype="Int64"),
            "Title": pd.Series([f"{tag} {i}" for i in ids], dtype=object),
            "Choices": pd.Series([["a", "b"] if i % 2 else [] for i in ids], dtype=object),
            "Modified": pd.Series(
                pd.to_datetime([dt.datetime(2026, 1, 1 + i % 28) for i in ids], utc=True)
            ),
        }
    )


@pytest.mark.parametrize(
    ("drop", "fetched"),
    [
        ({2, 5}, [2, 5]),  # updates: not in ID order any more, so sorted
        ({3}, [3, 11, 12]),  # an update and two new items
        ({4, 7}, []),  # deletions only
        ({9, 1}, [9, 1]),  # fetched out of order
    ],
)
def test_merge_equals_concatenating_and_sorting(drop: set[int], fetched: list[int]) -> None:
    old = _snapshot(list(range(1, 11)), "old")
    frame = _snapshot(fetched, "new")
    expected = (
        pd.concat(
            [old[~old["ID"].isin(list(drop))], frame]
            if fetched
            else [old[~old["ID"].isin(list(drop))]]
        )
        .sort_values("ID", kind="stable")
        .reset_index(drop=True)
    )
    got = _merge(old.copy(), drop, frame)
    pd.testing.assert_frame_equal(got, expected)
    assert got["ID"].tolist() == sorted(set(range(1, 11)) - drop | set(fetched))
    assert got.loc[got["ID"].isin(fetched), "Title"].str.startswith("new").all()


def test_shared_text_is_the_same_text_in_one_object() -> None:
    page = pd.DataFrame(
        {
            "ID": pd.array([1, 2, 3, 4], dtype="int64"),
            "County": pd.Series(["Skåne län", "Skåne", "Skåne län", None], dtype=object),
            "Title": pd.Series(["a", "b", "c", "d"], dtype=object),  # distinct: left alone
            "Tags": pd.Series([["x"], ["x"], [], None], dtype=object),  # lists: left alone
            "Mixed": pd.Series(["1", 1, "1", "1"], dtype=object),  # not text only: left alone
            "WithNan": pd.Series(["v", "v", float("nan"), "v"], dtype=object),
        }
    )
    # Each cell its own object, as decoded JSON gives them.
    page["County"] = pd.Series(
        ["".join(["Skåne", " län"]), "Skåne", "".join(["Skåne", " län"]), None], dtype=object
    )
    before = page.copy(deep=True)
    shared: dict[str, dict[str, str]] = {}
    _share_text(page, shared)
    pd.testing.assert_frame_equal(page, before)
    county = page["County"].tolist()
    assert county[0] is county[2] and county[3] is None
    # The next page's equal values are the first page's objects.
    nxt = pd.DataFrame({"County": pd.Series(["".join(["Skåne", " län"])] * 2, dtype=object)})
    _share_text(nxt, shared)
    assert nxt["County"].iloc[0] is county[0]
    assert isinstance(page["WithNan"].iloc[2], float)  # NaN stays NaN (column not touched)
    assert page["Mixed"].tolist() == ["1", 1, "1", "1"]


def test_object_columns_filled_per_row_group_read_back_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Row groups of two rows: lists of equal length in one group must stay lists, one per cell.
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 2)
    frame = pd.DataFrame(
        {
            "ID": pd.array([1, 2, 3, 4, 5], dtype="int64"),
            "Tags": pd.Series([["a", "b"], ["c", "d"], ["e"], [], None], dtype=object),
            "Text": pd.Series(["x", None, "x", "y", "x"], dtype=object),
            "Day": pd.Series([dt.date(2026, 1, i) for i in range(1, 6)], dtype=object),
            "Odd": pd.Series([1, "1", dt.date(2026, 1, 1), None, 2.5], dtype=object),
        }
    )
    back = frames.frame_from_parquet(frames.frame_to_parquet(frame))
    pd.testing.assert_frame_equal(back, frame)
    assert back["Tags"].tolist()[0] == ["a", "b"] and isinstance(back["Tags"].iloc[1], list)
    assert bytes(frames.frame_to_parquet_view(frame)) == frames.frame_to_parquet(frame)
    assert isinstance(back["Text"].to_numpy(), np.ndarray)


def test_make_bench_keeps_the_million_section(tmp_path: Path) -> None:
    from benchmarks.__main__ import BenchRun, goals, merge_million, million_section, read_million

    rows = [
        {
            "n": 1_000_000,
            "case": case,
            "changed": 10_000 if case == "incr-1" else None,
            "rows": 1_000_000,
            "requests": requests,
            "bytes": 1,
            "wall_s": 600.0,
            "client_cpu_s": 300.0,
            "rss_mb": rss,
            "verified": True,
        }
        for case, requests, rss in (
            ("full", 203, 1400.0),
            ("incr-0", 2, 900.0),
            ("incr-1", 215, 1200.0),
        )
    ]
    run = BenchRun("sync", ["python", "benchmarks/bench_sync.py"], doc={"results": rows})
    section = million_section(run, {"commit": "abc1234", "date": "2026-11-30 15:00 UTC"})
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Benchmarks\n\nold figures\n\n## Reproduce\n\nmake bench\n", encoding="utf-8"
    )
    readme.write_text(merge_million(readme.read_text(encoding="utf-8"), section), encoding="utf-8")

    # A later `make bench` renders everything anew and carries the section over unchanged.
    kept, million = read_million(readme)
    assert kept == section
    fresh = "# Benchmarks\n\nnew figures\n\n## Reproduce\n\nmake bench\n"
    merged = merge_million(fresh, kept)
    assert "new figures" in merged and "old figures" not in merged
    assert merged.index(section) < merged.index("## Reproduce")
    assert merge_million(merged, kept) == merged  # replaced in place, not added twice
    assert [r["case"] for r in million] == ["full", "incr-0", "incr-1"]
    assert million[0]["measured_at"] == "abc1234, 2026-11-30 15:00 UTC"
    goal = next(g for g in goals({}, million) if g.goal.startswith("1,000,000 items"))
    assert goal.met is True and "1,400 MB" in goal.measured
    data = json.loads(section.split("<!-- million-data ", 1)[1].split(" -->", 1)[0])
    assert data["commit"] == "abc1234"
    # The growth table of the regular sync section shows the kept rows beside its own.
    from benchmarks.__main__ import _sync_section

    small = BenchRun("sync", ["python"], doc={"results": [dict(rows[0], n=100_000)]})
    table = "\n".join(_sync_section(small, million))
    assert "| full | 100,000 |" in table
    assert "| full | 1,000,000 (measured abc1234, 2026-11-30 15:00 UTC) |" in table


def test_a_million_run_cut_short_keeps_its_finished_cases() -> None:
    from benchmarks.__main__ import BenchRun, million_section

    row: dict[str, Any] = {"n": 1_000_000, "case": "full", "rows": 1_000_000, "requests": 203}
    row |= {"bytes": 1, "wall_s": 900.0, "rss_mb": 1300.0, "verified": True}
    run = BenchRun(
        "sync",
        ["python"],
        doc=None,
        error="timed out after 3000 s",
        stderr_tail="seeding\nBENCH-ROW " + json.dumps(row) + "\n",
    )
    section = million_section(run, {"commit": "c", "date": "d"})
    assert "**Cut short** (timed out after 3000 s); cases finished: full." in section
    assert "| full |" in section and "holds for the finished cases" in section


@pytest.mark.parametrize("fetched", [[2, 5], [9, 1], [1, 10]])
def test_merge_of_replaced_rows_equals_concatenating_and_sorting(fetched: list[int]) -> None:
    """Rows only replaced (the common night) are written over the old columns in place: the
    same frame as concatenating and sorting, dtypes that differ between the two included."""
    old = _snapshot(list(range(1, 11)), "old")
    old["Score"] = pd.Series([float(i) for i in range(1, 11)], dtype="float64")
    old["Flag"] = pd.Series([i % 2 == 0 for i in range(1, 11)], dtype=bool)
    frame = _snapshot(fetched, "new")
    frame["Score"] = pd.Series([7] * len(fetched), dtype="int64")  # concat makes it float64
    frame["Flag"] = pd.Series([None] * len(fetched), dtype=object)  # … and this object
    kept = old[~old["ID"].isin(fetched)]
    expected = pd.concat([kept, frame]).sort_values("ID", kind="stable").reset_index(drop=True)
    assert engine._replaced_in_place(old["ID"].to_numpy(), set(fetched), frame) is not None
    got = _merge(old.copy(), set(fetched), frame)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert [type(v) for v in got["Flag"]] == [type(v) for v in expected["Flag"]]
