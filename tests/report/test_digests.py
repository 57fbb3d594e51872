"""Row digests (sp_sync.report.digests): a workbook's rows of a table hashed once give the same
digest as hashing its filtered copy, and a change reaches exactly the digests that hold it."""

from __future__ import annotations

import hashlib

import pandas as pd

from sp_sync.report.digests import TableDigest, update_frame


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "county": ["Skåne län", "Uppsala län", "Skåne län", None, "Gotlands län"],
            "title": ["a", "b", "c", "d", "e"],
            "tags": [["x", "y"], [], ["z"], None, ["x"]],  # lists: hashed by their repr
            "count": [1, 2, 3, 4, 5],
            "due": pd.to_datetime(["2026-01-01", None, "2026-02-01", "2026-03-01", None]),
            "last_synced": ["t1", "t2", "t3", "t4", "t5"],
        }
    )


def _whole(df: pd.DataFrame, drop: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    update_frame(h, df, drop)
    return h.hexdigest()


def _rows(digest: TableDigest, county: object) -> str:
    h = hashlib.sha256()
    digest.update_rows_where(h, "county", county)
    return h.hexdigest()


def test_rows_of_a_table_digest_like_their_filtered_copy() -> None:
    df = _table()
    digest = TableDigest(df, drop=("last_synced",))
    for county in ("Skåne län", "Uppsala län", "Gotlands län", "Hallands län"):
        expected = _whole(df[df["county"] == county], drop=("last_synced",))
        assert _rows(digest, county) == expected
    h = hashlib.sha256()
    digest.update(h)
    assert h.hexdigest() == _whole(df, drop=("last_synced",))


def test_a_change_reaches_only_the_digests_that_hold_it() -> None:
    before = TableDigest(_table(), drop=("last_synced",))
    edited = _table()
    edited.at[2, "tags"] = ["z", "w"]  # a Skåne row's list value
    after = TableDigest(edited, drop=("last_synced",))
    assert _rows(after, "Skåne län") != _rows(before, "Skåne län")
    assert _rows(after, "Uppsala län") == _rows(before, "Uppsala län")
    assert _rows(after, "Gotlands län") == _rows(before, "Gotlands län")
    # A dropped (freshness) column changes nothing.
    fresher = _table()
    fresher["last_synced"] = "later"
    assert _whole(fresher, drop=("last_synced",)) == _whole(_table(), drop=("last_synced",))
    assert _whole(fresher) != _whole(_table())


def test_an_empty_selection_digests_the_header_and_no_rows() -> None:
    df = _table()
    assert _rows(TableDigest(df), "Hallands län") == _whole(df.iloc[0:0])
    assert _rows(TableDigest(df), "Hallands län") != _rows(TableDigest(df[["county"]]), "x")


def test_row_order_and_values_both_count() -> None:
    df = _table()
    assert _whole(df) != _whole(df.iloc[::-1].reset_index(drop=True))
    changed = df.copy()
    changed.at[0, "count"] = 10
    assert _whole(changed) != _whole(df)
    assert _whole(None) == hashlib.sha256(b"<none>").hexdigest()


def _digest(d: TableDigest) -> str:
    h = hashlib.sha256()
    d.update(h)
    return h.hexdigest()


def test_alike_tables_hashed_together_digest_like_each_on_its_own() -> None:
    df = _table()
    parts = [df.iloc[0:2], df.iloc[2:2], df.iloc[2:5], df[["county", "title"]], df.iloc[1:4]]
    together = TableDigest.many(parts, drop=("last_synced",))
    assert len(together) == len(parts)
    for part, digest in zip(parts, together, strict=True):
        assert _digest(digest) == _digest(TableDigest(part, drop=("last_synced",)))
        assert digest.columns == TableDigest(part, drop=("last_synced",)).columns
    # Rows of a table hashed together digest like its filtered copy.
    skane = parts[2][parts[2]["county"] == "Skåne län"]
    assert _rows(together[2], "Skåne län") == _whole(skane, drop=("last_synced",))


def test_a_change_in_one_of_alike_tables_reaches_only_its_digest() -> None:
    df = _table()
    before = TableDigest.many([df.iloc[0:2], df.iloc[2:5]])
    edited = df.copy()
    edited.at[3, "title"] = "changed"
    after = TableDigest.many([edited.iloc[0:2], edited.iloc[2:5]])
    assert _digest(after[0]) == _digest(before[0])
    assert _digest(after[1]) != _digest(before[1])
    # Rows of a table hashed together still digest like that table's filtered copy.
    expected = _whole(edited.iloc[2:5][edited.iloc[2:5]["county"] == "Skåne län"])
    assert _rows(after[1], "Skåne län") == expected
