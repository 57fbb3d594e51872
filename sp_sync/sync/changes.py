"""What one incremental sync changed in a list's snapshot, handed to the run's rollup (issue 14
goal 4: a night rebuilds only the workbooks whose inputs changed).

The sync knows which rows it replaced; the rollup knows which workbook shows which row. The
rollup routes each changed row, as it was before and as it is now, to its workbooks (see
sp_sync.report.scope).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["ListChanges"]


@dataclass(frozen=True, eq=False)
class ListChanges:
    """The rows of a list's snapshot one sync changed, relative to the state it started from.

    `ids` are the items the sync added, replaced or removed, and those whose lookup titles it
    re-resolved; every other row of the new snapshot is the row of the base state, unchanged.
    `before` holds the base state's rows of those ids (an id not in it was added). The base
    state is named by its generation and manifest ETag, as the rollup's record names the
    states it was built from."""

    base_generation: int
    base_etag: str | None
    ids: frozenset[int]
    before: pd.DataFrame

    def with_rows(self, rows: pd.DataFrame) -> ListChanges:
        """These changes plus `rows` (base-state rows) whose ids were not in them yet."""
        if not len(rows):
            return self
        ids = {int(i) for i in rows["ID"].tolist()}
        new = rows[~rows["ID"].isin(list(self.ids))]
        before = pd.concat([self.before, new], ignore_index=True) if len(new) else self.before
        return ListChanges(self.base_generation, self.base_etag, self.ids | ids, before)
