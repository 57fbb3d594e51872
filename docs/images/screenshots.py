"""Regenerate the README's workbook screenshots from the current demo (`make screenshots`).

Runs the demo (emulator, seeded lists, the real pipeline) into a temporary folder, converts the
chosen workbooks to PDF with LibreOffice (`soffice --headless --convert-to pdf`) and the chosen
pages to PNG with poppler (`pdftoppm -png`), and writes them next to this file. What the
pictures show is what `make demo` produces on the day it runs (the demo plans around today).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (workbook, first page, last page, PNG name): the overview's headline page and county table,
#: one department's summary, one county's dialogue preparation.
SHOTS = (
    ("Länsöversikt.xlsx", 1, 1, "lansoversikt-oversikt"),
    ("Länsöversikt.xlsx", 2, 2, "lansoversikt-lan"),
    ("Återkoppling – Företag.xlsx", 1, 1, "aterkoppling-foretag"),
    ("Länsbild – Skåne län.xlsx", 1, 1, "lansbild-skane"),
)
RESOLUTION = 80  # dpi: A4 landscape → about 935 × 660 pixels


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} is needed for the screenshots (LibreOffice / poppler-utils)")
    return path


def main() -> int:
    soffice, pdftoppm = _need("soffice"), _need("pdftoppm")
    from sp_sync.demo.runner import run_demo

    with tempfile.TemporaryDirectory(prefix="sp-sync-shots-") as tmp:
        out = Path(tmp) / "rollups"
        with contextlib.redirect_stdout(io.StringIO()):  # the demo's JSON summaries
            status = run_demo(out_dir=out, as_json=True)
        if status != 0:
            print("the demo failed; no screenshots written", file=sys.stderr)
            return 1
        pdf_dir = Path(tmp) / "pdf"
        profile = Path(tmp) / "lo-profile"  # a private profile: works beside a running soffice
        for book in sorted({s[0] for s in SHOTS}):
            subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation={profile.as_uri()}",
                    "--headless",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(pdf_dir),
                    str(out / book),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        for book, first, last, name in SHOTS:
            pdf = pdf_dir / (Path(book).stem + ".pdf")
            subprocess.run(
                [
                    pdftoppm,
                    "-png",
                    "-r",
                    str(RESOLUTION),
                    "-f",
                    str(first),
                    "-l",
                    str(last),
                    "-singlefile",
                    str(pdf),
                    str(HERE / name),
                ],
                check=True,
            )
            print(f"docs/images/{name}.png  ← {book}, page {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
