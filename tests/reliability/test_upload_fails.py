"""Scenario 5: an upload that fails after some chunks, through the `sp-sync run` process.

SP_SYNC_UPLOAD_CHUNK_MB=1 (the smallest the setting allows) and one county whose knowledge
carries long, incompressible descriptions, so its Länsbild is ~3.7 MiB: four chunks (start,
continue, continue, finish). The second `continueUpload` of the second night is refused: the run
exits 5 with a message naming the workbook, the previous workbook on the site is byte-identical,
the snapshot is exact, and the third night uploads the new workbook.
"""

from __future__ import annotations

import base64
import io
import random

import pytest
from openpyxl import load_workbook

from tests.reliability.helpers import RequestTrigger, World

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

BIG = "Länsbild – Gotlands län.xlsx"


def _big_rows(rng: random.Random, n: int, tag: str) -> list[dict[str, str]]:
    # base64 of random bytes: ~6 bits per character even after the xlsx zip compression.
    return [
        {
            "Title": f"Omfattande underlag {tag} {i}", "County": "Gotlands län",
            "SubjectArea": "Innovation", "Department": "Företag", "Status": "Aktuell",
            "EntryType": "Kunskap",
            "Description": base64.b64encode(rng.randbytes(22_000)).decode("ascii"),
        }
        for i in range(n)
    ]  # fmt: skip


def _has_text(data: bytes, text: str) -> bool:
    wb = load_workbook(io.BytesIO(data), read_only=True)
    try:
        return any(
            text in str(v)
            for ws in wb.worksheets
            for row in ws.iter_rows(values_only=True)
            for v in row
            if v is not None
        )
    finally:
        wb.close()


def test_upload_failing_after_some_chunks_keeps_previous_workbook(world: World) -> None:
    rng = random.Random(5)
    world.emu.backend.bulk_add_items(
        "strategiskt-regionarbete", "Länskunskap", _big_rows(rng, 150, "a")
    )

    first = world.cli_run(SP_SYNC_UPLOAD_CHUNK_MB="1")
    assert first.returncode == 0, first.stderr[-2000:]
    before = world.assert_workbooks_open()
    assert len(before[BIG]) > 3 * 1024 * 1024  # really four chunks
    versions_before = world.site_versions()

    # Night 2: new rows (the workbook changes) and the connection drops during the 2nd
    # continueUpload (a throttled chunk would be retried; a cut-off one may have been applied).
    world.emu.backend.bulk_add_items(
        "strategiskt-regionarbete", "Länskunskap", _big_rows(rng, 3, "b")
    )
    world.change_items(rng)
    trigger = RequestTrigger(world.emu)
    trigger.when(
        lambda m, p: m == "POST" and "continueUpload" in p,
        2,
        lambda: world.emu.faults.drop_connection(count=1, method="POST", path="continueUpload"),
        "2nd continueUpload cut off",
    )
    world.emu.reset_stats()
    second = world.cli_run(SP_SYNC_UPLOAD_CHUNK_MB="1")
    assert trigger.fired == ["2nd continueUpload cut off"]
    assert second.returncode == 5, (second.returncode, second.stderr[-2000:])
    assert "Traceback" not in second.stderr
    # The CLI speaks Swedish by default: "the previous version of the file is unchanged".
    assert BIG in second.stderr and "oförändrad" in second.stderr, second.stderr
    # The session was abandoned: two chunks accepted, then cancelled, nothing finished.
    paths = [e["path"] for e in world.emu.journal()]
    assert sum("continueUpload" in p for p in paths) == 2
    assert any("CancelUpload" in p for p in paths)
    assert not any("finishUpload" in p and BIG in p for p in paths)
    after = world.site_workbooks()
    assert after[BIG] == before[BIG]  # byte for byte
    assert world.site_versions()[BIG] == versions_before[BIG]
    world.assert_exact()  # the sync was committed before the rollup failed
    store = world.store()
    last, _ = store.read_json("summaries/strategiskt-regionarbete/last.json")
    assert last is not None and any(e.get("error") == "UploadError" for e in last["errors"])

    # Night 3: no fault; the new workbook replaces the old one (kept as a version).
    third = world.cli_run(SP_SYNC_UPLOAD_CHUNK_MB="1")
    assert third.returncode == 0, third.stderr[-2000:]
    final = world.assert_workbooks_open()
    assert final[BIG] != before[BIG] and len(final[BIG]) > len(before[BIG])
    assert world.site_versions()[BIG] == versions_before[BIG] + 1
    assert _has_text(final[BIG], "Omfattande underlag b 0")  # night 2's rows, now uploaded
    assert not _has_text(before[BIG], "Omfattande underlag b 0")
    world.assert_exact()
