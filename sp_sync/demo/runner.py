"""`sp-sync demo` / `make demo`: the whole product on a laptop, without a tenant.

Starts the SharePoint emulator in-process on a free port, provisions the three lists from
list_schemas/, seeds deterministic demo data for all 21 counties, runs the full pipeline through
the managed-identity path (the emulator's identity endpoint, as in Azure), uploads the workbooks
to the emulator and saves copies under ./rollups/, then edits, deletes and adds items and runs
again to show an incremental run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sp_sync.run.progress import Progress

DEMO_SITE = "strategiskt-regionarbete"
_IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
)


@contextmanager
def managed_identity_env(endpoint: str, header: str) -> Iterator[None]:
    """Point msal's managed-identity detection at the emulator (App Service protocol)."""
    saved = {k: os.environ.get(k) for k in _IDENTITY_VARS}
    for k in _IDENTITY_VARS:
        os.environ.pop(k, None)
    os.environ["IDENTITY_ENDPOINT"] = endpoint
    os.environ["IDENTITY_HEADER"] = header
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def demo_env(emulator: Any, state_dir: Path) -> dict[str, str]:
    """The app settings a Functions deployment would have, pointing at the emulator."""
    return {
        "SP_SYNC_SITE_URL": emulator.site_url(DEMO_SITE),
        "SP_SYNC_AUTH": "managed_identity",
        "SP_SYNC_RESOURCE": emulator.url,
        "SP_SYNC_ORGANISATION": "Demo",
        "SP_SYNC_STATE": "local",
        "SP_SYNC_STATE_DIR": str(state_dir),
        "SP_SYNC_LANGUAGE": os.environ.get("SP_SYNC_LANGUAGE", "sv"),
    }


def seed(
    emulator: Any,
    *,
    base_date: dt.date,
    site: str = DEMO_SITE,
    knowledge_per_county: int = 60,
    feedback_per_county: int = 40,
    user_count: int = 8,
) -> dict[str, int]:
    """Fill the provisioned lists of `site` with demo rows; returns rows per list."""
    from sp_sync.demo.data import generate_demo_data
    from sp_sync.schema import load_schemas

    backend = emulator.backend
    user_ids = _people(backend.get_site(site).users)[:user_count]
    data = generate_demo_data(
        load_schemas().reference,
        user_ids=user_ids,
        base_date=base_date,
        knowledge_per_county=knowledge_per_county,
        feedback_per_county=feedback_per_county,
    )
    counts = {}
    for title, rows in (
        ("Dialoger", data.dialogues),
        ("Länskunskap", data.knowledge),
        ("Dialogåterkoppling", data.feedback),
    ):
        backend.bulk_add_items(site, title, rows)
        counts[title] = len(rows)
    return counts


def _people(users: Any) -> list[int]:
    """Site users who are people: the demo never names the app principal as responsible."""
    from sp_sync.demo.data import person_ids

    return person_ids(users)


def make_changes(emulator: Any, *, seed_value: int = 7) -> dict[str, int]:
    """Edits, deletions and new feedback between the two runs, as staff would make them."""
    rng = random.Random(seed_value)
    backend = emulator.backend
    site = backend.get_site(DEMO_SITE)
    feedback = backend.get_list(site, title="Dialogåterkoppling")
    knowledge = backend.get_list(site, title="Länskunskap")
    fb_ids = sorted(feedback.items)
    kn_ids = sorted(knowledge.items)
    edited = 0
    for item_id in rng.sample(fb_ids, 25):
        item = backend.get_item(feedback, item_id)
        backend.update_item(site, feedback, item, {"Status": "Klar"}, if_match=None)
        edited += 1
    deleted = 0
    for item_id in rng.sample(kn_ids, 10):
        backend.delete_item(site, knowledge, backend.get_item(knowledge, item_id))
        deleted += 1
    added = 0
    for i in range(12):
        backend.add_item(
            site,
            feedback,
            {
                "Title": f"Ny återkoppling från dialog {i + 1}",
                "County": "Gotlands län",
                "DialogueDate": dt.date.today().isoformat(),
                "ReceivingDepartment": rng.choice(["Företag", "Regioner", "Analys"]),
                "Status": "Ny",
                "DueDate": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            },
        )
        added += 1
    return {"edited": edited, "deleted": deleted, "added": added}


def run_demo(
    *,
    out_dir: Path = Path("rollups"),
    state_dir: Path | None = None,
    keep_running: bool = False,
    as_json: bool = False,
    progress: Progress | None = None,
) -> int:
    from sp_emulator import SharePointEmulator
    from sp_sync.run import pipeline
    from sp_sync.settings import Settings

    progress = progress or Progress()
    say = (lambda *_a: None) if as_json else (lambda text: print(text, flush=True))
    started = time.monotonic()
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sp-sync-demo-")
        state_dir = Path(tmp.name) / "state"
    summaries: list[dict[str, Any]] = []
    try:
        with (
            SharePointEmulator(sites=[DEMO_SITE]) as emu,
            managed_identity_env(emu.identity_endpoint, emu.identity_header),
        ):
            say(f"SharePoint-emulatorn kör på {emu.url} (webbplats {emu.site_url(DEMO_SITE)})")
            settings = Settings.from_env(demo_env(emu, state_dir))
            site = settings.sites[0]

            plan, _applied = pipeline.run_provision(
                settings, site, apply=True, allow_destructive=False
            )
            say("\n== Provisionering ==\n" + plan.format_text(settings.language))
            counts = seed(emu, base_date=dt.date.today())
            say("Demodata: " + ", ".join(f"{k} {v} rader" for k, v in counts.items()))

            say("\n== Körning 1: full synkronisering ==")
            first = pipeline.run_pipeline(settings, site, out_dir=out_dir, progress=progress)
            summaries.append(first.to_dict())
            say(first.format_text(settings.language))

            changes = make_changes(emu)
            say(
                f"\nÄndringar i listorna: {changes['edited']} redigerade, "
                f"{changes['deleted']} borttagna, {changes['added']} nya"
            )
            say("\n== Körning 2: inkrementell synkronisering ==")
            second = pipeline.run_pipeline(settings, site, out_dir=out_dir, progress=progress)
            summaries.append(second.to_dict())
            say(second.format_text(settings.language))

            if as_json:
                print(json.dumps(summaries, ensure_ascii=False, indent=2, default=str))
            else:
                _print_where(
                    emu, second, out_dir, time.monotonic() - started, keep_running=keep_running
                )
            if keep_running:
                say("\nEmulatorn fortsätter köra; avsluta med Ctrl+C.")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            failed = [s for s in (first, second) if s.status != "ok"]
            return 0 if not failed else 8
    finally:
        if tmp is not None:
            tmp.cleanup()


def _print_where(
    emu: Any, summary: Any, out_dir: Path, seconds: float, *, keep_running: bool
) -> None:
    print(f"\nKlart på {seconds:.1f} s. Arbetsböckerna finns lokalt i {out_dir.resolve()}/")
    if not summary.workbooks:
        return
    first = summary.workbooks[0]
    url = f"{emu.url}/sites/{DEMO_SITE}/_api/web/GetFileByServerRelativeUrl('{first.server_relative_url}')/$value"
    print("De är också uppladdade till emulatorns dokumentbibliotek, t.ex.:")
    print(f"  {url}")
    if keep_running:
        token = emu.issue_token()
        print("Hämta utan webbläsare (emulatorn kör tills du trycker Ctrl+C):")
        print(f'  curl -o Lansoversikt.xlsx -H "Authorization: Bearer {token}" "{url}"')
    else:
        print(
            "(Emulatorn stängs när demon är klar; `sp-sync demo --keep-running` låter den vara kvar.)"
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo())
