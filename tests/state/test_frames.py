"""Parquet round trip of the normalized snapshot contract: values and dtypes come back exactly."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_sync.errors import StateError
from sp_sync.state.frames import frame_from_parquet, frame_to_parquet
from tests.state.helpers import quality, snapshot


def round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    back = frame_from_parquet(frame_to_parquet(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert [str(t) for t in back.dtypes] == [str(t) for t in frame.dtypes]
    return back


def test_snapshot_with_every_contract_type_round_trips() -> None:
    frame = snapshot(7, n=6)
    back = round_trip(frame)
    cells = back.to_dict("list")
    # Lists stay Python lists (not numpy arrays), of the same element types.
    assert cells["Sakomrade"][0] == ["s7", "Övrigt"] and type(cells["Sakomrade"][0]) is list
    assert cells["Sakomrade"][1] == []
    assert cells["KoppladKunskapId"][0] == [1, 8] and type(cells["KoppladKunskapId"][0][0]) is int
    assert cells["Dialogdatum"][0] == dt.date(2024, 4, 1) and cells["Dialogdatum"][1] is None
    assert type(cells["Dialogdatum"][0]) is dt.date
    assert back["AnsvarigId"].dtype == "Int64" and back["AnsvarigId"].isna().tolist() == [
        False, True, False, True, False, True,
    ]  # fmt: skip
    assert str(back["Created"].dtype) == "datetime64[us, UTC]"
    assert str(back["Created_local"].dtype) == "datetime64[us, Europe/Stockholm]"
    assert cells["Klar"][:3] == [None, False, True]
    assert cells["Title"][0] == "g7 rad 1 – åäö 😀 עברית \x07"


def test_empty_frame_keeps_typed_columns() -> None:
    back = round_trip(snapshot(1).iloc[:0].reset_index(drop=True))
    assert len(back) == 0
    assert back["AnsvarigId"].dtype == "Int64"
    assert str(back["Created"].dtype) == "datetime64[us, UTC]"


def test_frame_without_columns() -> None:
    assert frame_from_parquet(frame_to_parquet(pd.DataFrame())).shape == (0, 0)


def test_mixed_values_are_kept_exactly_not_coerced() -> None:
    # Arrow alone would turn the int next to a date into 1970-01-03.
    back = round_trip(quality(2))
    assert back["value"].tolist() == [None, dt.date(2024, 2, 29), 2]
    mixed = pd.DataFrame(
        {
            "v": pd.Series(
                [1, "1", 1.5, True, [1, "a"], {"k": dt.date(2024, 1, 1)}, None], dtype=object
            )
        }
    )
    assert frame_from_parquet(frame_to_parquet(mixed))["v"].tolist() == mixed["v"].tolist()


def test_non_default_index_round_trips() -> None:
    frame = snapshot(3).set_index("ID")
    back = round_trip(frame)
    assert back.index.name == "ID" and back.index.tolist() == [1, 2, 3]


def test_object_column_of_strings_stays_object() -> None:
    frame = pd.DataFrame({"s": pd.Series(["a", None, "c"], dtype=object)})
    back = round_trip(frame)
    assert back["s"].dtype == object and back["s"].tolist() == ["a", None, "c"]


def test_bad_column_names_are_refused() -> None:
    with pytest.raises(StateError):
        frame_to_parquet(pd.DataFrame({1: [1]}))
    with pytest.raises(StateError):
        frame_to_parquet(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_corrupt_bytes_raise_state_error() -> None:
    data = frame_to_parquet(snapshot(1))
    with pytest.raises(StateError):
        frame_from_parquet(data[: len(data) // 2])


# Any text, including emoji, right-to-left script, NUL and other control characters.
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), _text), min_size=1, max_size=8),
    lists=st.lists(st.lists(_text, max_size=4), min_size=1, max_size=8),
)
def test_any_unicode_text_round_trips(texts: list[str | None], lists: list[list[str]]) -> None:
    frame = pd.DataFrame({"t": pd.Series(texts, dtype=object)})
    assert frame_from_parquet(frame_to_parquet(frame))["t"].tolist() == texts
    frame = pd.DataFrame({"l": pd.Series(lists, dtype=object)})
    assert frame_from_parquet(frame_to_parquet(frame))["l"].tolist() == lists


def test_json_column_parsed_at_once_equals_cell_by_cell() -> None:
    # Issue 14 goal 4: a JSON column is parsed in one `json.loads` per row group; each value
    # must be what decoding its own cell gives, tags included, None cells in place.
    from sp_sync.state.frames import _json_column, _json_dumps, _json_loads

    values = [
        None,
        [1, "a", None],
        {"k": [dt.date(2024, 1, 1), float("inf")]},
        pd.Timestamp("2024-03-01T10:00:00+00:00"),
        [],
        float("nan"),
        None,
        'text, with [brackets] and "quotes"',
        {"outer": {"inner": dt.date(2020, 2, 29)}},
    ]
    texts = [None if v is None else _json_dumps(v) for v in values]
    got = _json_column(texts)
    expected = [None if t is None else _json_loads(t) for t in texts]
    assert len(got) == len(values)
    assert repr(got) == repr(expected)
    assert got[2] == {"k": [dt.date(2024, 1, 1), float("inf")]}
    assert got[0] is None and got[6] is None
    assert _json_column([None, None]) == [None, None]
    # A column without empty cells (lookup ids beside empty lists: the usual JSON column) is
    # parsed straight into the cell values, each its own list.
    full: list[str | None] = [t for t in texts if t is not None]
    got = _json_column(full)
    assert repr(got) == repr([_json_loads(str(t)) for t in full])
    lists = _json_column(["[1,2]", "[]", "[1,2]"])
    assert lists == [[1, 2], [], [1, 2]] and lists[0] is not lists[2]


def test_mixed_column_over_several_row_groups_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    import sp_sync.state.frames as frames

    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 3)
    column = [None, [1, "a"], dt.date(2024, 1, 1), 2, None, {"x": 1.5}, [], "s"]
    frame = pd.DataFrame({"v": pd.Series(column, dtype=object), "t": list("abcdefgh")})
    back = frame_from_parquet(frame_to_parquet(frame))
    assert back["v"].tolist() == column
    assert back["t"].tolist() == list("abcdefgh")
