"""Sample snapshot frames shared by the state tests (and the crash runner)."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def snapshot(generation: int, n: int = 3) -> pd.DataFrame:
    """A snapshot with every column kind of the normalized contract; values depend on `generation`."""
    ids = list(range(1, n + 1))
    base = pd.Timestamp("2024-03-31T00:30:00Z") + pd.Timedelta(days=generation)
    created = pd.Series([base + pd.Timedelta(hours=i) for i in ids], dtype="datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "ID": pd.Series(ids, dtype="int64"),
            "Title": [f"g{generation} rad {i} – åäö 😀 עברית \x07" for i in ids],
            "Lan": [["Skåne län", "Hallands län"][i % 2] if i % 3 else None for i in ids],
            "Sakomrade": [[f"s{generation}", "Övrigt"] if i % 2 else [] for i in ids],
            "KoppladKunskapId": [[i, i + generation] if i % 2 else [] for i in ids],
            "Dialogdatum": [
                dt.date(2024, 3, 31) + dt.timedelta(days=i) if i % 2 else None for i in ids
            ],
            "Antal": [float(i * generation) if i % 2 else float("nan") for i in ids],
            "Klar": [True if i % 3 == 0 else (None if i % 3 == 1 else False) for i in ids],
            "AnsvarigId": pd.array([i if i % 2 else None for i in ids], dtype="Int64"),
            "Created": created,
            "Created_local": created.dt.tz_convert("Europe/Stockholm"),
            "_version": pd.Series([generation] * n, dtype="int64"),
        }
    )


def quality(generation: int) -> pd.DataFrame:
    """Data-quality records; `value` mixes types on purpose (the offending values)."""
    return pd.DataFrame(
        {
            "list_title": ["Dialoger", "Dialoger", "Länskunskap"],
            "item_id": pd.array([1, 2, None], dtype="Int64"),
            "column": ["Lan", "Dialogdatum", "Title"],
            "problem_sv": ["saknas", "fel datum", f"generation {generation}"],
            "value": [None, dt.date(2024, 2, 30 - 1), generation],
        }
    )


#: Rows of the list the delta crash tests commit night after night.
NIGHT_ROWS = 200


def night_rows(night: int) -> pd.DataFrame:
    """The list after `night` nights: `snapshot(1)` with the titles of IDs 1..night edited
    tonight (so a night touches IDs 1..night: an incremental commit writes them as a delta)."""
    rows = snapshot(1, NIGHT_ROWS)
    titles = rows["Title"].to_numpy(dtype=object).copy()
    titles[:night] = [f"natt {night} rad {i}" for i in range(1, night + 1)]
    rows["Title"] = pd.Series(titles, dtype=object)
    return rows
