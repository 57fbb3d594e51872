"""One generated rollup workbook, without the layouts that make it (issue 14 goal 4: a night
that rebuilds nothing imports neither the layouts nor openpyxl)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RollupWorkbook"]


@dataclass(frozen=True)
class RollupWorkbook:
    """One generated workbook: its file name, the .xlsx bytes and its sheet names in order."""

    name: str
    data: bytes
    sheets: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.data)
