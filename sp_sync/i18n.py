"""Workbook labels in Swedish (default) and English (``SP_SYNC_LANGUAGE=en``).

Column keys used by :mod:`sp_sync.report.tables` are English identifiers; this module turns them,
sheet names, titles and notes into the text a team lead reads. Choice values from the lists
(county, status, phase…) are translated with the ``en`` labels of the list schemas where they
exist; county names are proper nouns and stay Swedish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LANGUAGES",
    "Plural",
    "Text",
    "choice_label",
    "format_number",
    "format_seconds",
    "format_size",
    "label",
    "normalise_language",
]

LANGUAGES = ("sv", "en")


@dataclass(frozen=True)
class Text:
    """One user-facing text in Swedish and English. The language is always passed in by the
    caller (from `Settings.language`); nothing here reads the environment."""

    sv: str
    en: str

    def render(self, language: str, **fmt: object) -> str:
        text = self.en if normalise_language(language) == "en" else self.sv
        return text.format(**fmt) if fmt else text


@dataclass(frozen=True)
class Plural:
    """A counted noun in both languages: "1 rad" / "2 rader", "1 issue" / "2 issues"."""

    sv_one: str
    sv_many: str
    en_one: str
    en_many: str

    def render(self, language: str, count: int) -> str:
        english = normalise_language(language) == "en"
        one, many = (self.en_one, self.en_many) if english else (self.sv_one, self.sv_many)
        return f"{format_number(count, language)} {one if count == 1 else many}"


def format_number(value: float, language: str, *, decimals: int = 0) -> str:
    """`1 674` and `0,1` in Swedish, `1,674` and `0.1` in English."""
    text = f"{value:,.{decimals}f}"
    if normalise_language(language) == "en":
        return text
    # Swedish groups thousands with a space and uses a decimal comma.
    return text.replace(",", " ").replace(".", ",")


def format_seconds(seconds: float, language: str) -> str:
    """A duration as people read it: `0,1 s`, `42 s`, `3 min 5 s`, `1 h 2 min`."""
    if seconds < 10:
        return f"{format_number(seconds, language, decimals=1)} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_size(size: float, language: str) -> str:
    """Bytes as `512 byte`/`512 bytes`, `1 674 kB`… (1 kB = 1024 byte, as Windows shows files)."""
    if size < 1024:
        many = "bytes" if normalise_language(language) == "en" else "byte"
        return f"{format_number(size, language)} {'byte' if size == 1 else many}"
    for unit in ("kB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    decimals = 1 if size < 10 else 0
    return f"{format_number(size, language, decimals=decimals)} {unit}"


# key -> (Swedish, English); the keyed labels of workbooks and progress lines.
_PAIRS: dict[str, tuple[str, str]] = {
    # workbook and sheet names
    "wb_overview": ("Länsöversikt", "County overview"),
    "wb_department": ("Återkoppling – {name}", "Feedback – {name}"),
    "wb_county": ("Länsbild – {name}", "County profile – {name}"),
    "sheet_overview": ("Översikt", "Overview"),
    "sheet_matrix": ("Kunskapsmatris", "Knowledge matrix"),
    "sheet_feedback": ("Återkoppling", "Feedback"),
    "sheet_dialogue_plan": ("Dialogplan", "Dialogue plan"),
    "sheet_charts": ("Diagram", "Charts"),
    "sheet_quality": ("Datakvalitet", "Data quality"),
    "sheet_about": ("Om rapporten", "About"),
    "sheet_knowledge": ("Kunskap", "Knowledge"),
    # sheet titles
    "title_overview": ("Översikt per län", "Overview by county"),
    "title_matrix": (
        "Aktuell kunskap per län och sakområde",
        "Current knowledge by county and subject area",
    ),
    "title_feedback": ("Öppen återkoppling", "Open feedback"),
    "title_dialogue_plan": ("Dialogplan", "Dialogue plan"),
    "title_quality": ("Poster som behöver rättas", "Items that need fixing"),
    "title_about": ("Om rapporten", "About this report"),
    "title_charts": ("Diagram", "Charts"),
    "title_department": (
        "Återkoppling till avdelning {name}",
        "Feedback to the {name} department",
    ),
    "title_county_knowledge": ("Aktuell kunskap – {name}", "Current knowledge – {name}"),
    "title_county_dialogues": ("Dialogplan – {name}", "Dialogue plan – {name}"),
    "title_county_feedback": ("Återkoppling – {name}", "Feedback – {name}"),
    "subtitle": ("Skapad {when} från {site}", "Generated {when} from {site}"),
    "chart_feedback": ("Återkoppling per län", "Feedback by county"),
    "chart_knowledge": (
        "Aktuell kunskap per sakområde och team",
        "Current knowledge by subject area and team",
    ),
    "rows_not_shown": (
        "… {count} rader visas inte (Excels gräns är 1 048 576 rader per blad).",
        "… {count} rows not shown (Excel's limit is 1,048,576 rows per sheet).",
    ),
    "empty": ("Inga rader.", "No rows."),
    "open_link": ("Öppna", "Open"),
    "yes": ("Ja", "Yes"),
    "no": ("Nej", "No"),
    # column headers
    "team": ("Team", "Team"),
    "county": ("Län", "County"),
    "code": ("Länskod", "County code"),
    "knowledge_current": ("Aktuell kunskap", "Current knowledge"),
    "strategic_inputs": ("Strategiska inspel", "Strategic inputs"),
    "added_30d": ("Nya senaste 30 dagarna", "Added last 30 days"),
    "current_phase": ("Aktuell fas", "Current phase"),
    "next_dialogue": ("Nästa planerade dialog", "Next planned dialogue"),
    "last_dialogue": ("Senast genomförda dialog", "Last dialogue held"),
    "feedback_total": ("Återkoppling totalt", "Feedback total"),
    "feedback_open": ("Öppen återkoppling", "Open feedback"),
    "feedback_overdue": ("Försenad återkoppling", "Overdue feedback"),
    "feedback_closed_share": ("Andel avslutad", "Share closed"),
    "title": ("Rubrik", "Title"),
    "department": ("Avdelning", "Department"),
    "receiving_department": ("Mottagande avdelning", "Receiving department"),
    "subject_area": ("Sakområde", "Subject area"),
    "entry_type": ("Typ", "Type"),
    "description": ("Beskrivning", "Description"),
    "priority": ("Prioritet", "Priority"),
    "valid_until": ("Giltig till", "Valid until"),
    "status": ("Status", "Status"),
    "dialogue": ("Dialog", "Dialogue"),
    "dialogue_date": ("Dialogdatum", "Dialogue date"),
    "due_date": ("Sista datum", "Due date"),
    "days_overdue": ("Dagar försenad", "Days overdue"),
    "owner": ("Ansvarig", "Owner"),
    "feedback_text": ("Återkoppling", "Feedback"),
    "action": ("Åtgärd", "Action"),
    "modified": ("Senast ändrad", "Last modified"),
    "link": ("Länk", "Link"),
    "year": ("År", "Year"),
    "phase": ("Fas", "Phase"),
    "planned_date": ("Planerat datum", "Planned date"),
    "held_date": ("Genomfört datum", "Date held"),
    "held": ("Genomförd", "Held"),
    "county_lead": ("Länsansvarig", "County lead"),
    "list": ("Lista", "List"),
    "item_id": ("ID", "ID"),
    "column": ("Fält", "Field"),
    "problem": ("Problem", "Problem"),
    "value": ("Värde", "Value"),
    "items": ("Antal poster", "Items"),
    "last_synced": ("Senast synkroniserad", "Last synchronised"),
    # progress lines of the command line
    "progress_sync": ("Synkar {title}", "Syncing {title}"),
    "progress_rows": ("rader", "rows"),
    "progress_synced": ("Synkat: {rows} rader lästa", "Synced: {rows} rows read"),
    "progress_build": ("Bygger arbetsböcker", "Building workbooks"),
    "progress_built": ("{count} arbetsböcker byggda", "{count} workbooks built"),
    "progress_upload": ("Laddar upp", "Uploading"),
    "progress_uploaded": (
        "{count} arbetsböcker uppladdade till {folder}",
        "{count} workbooks uploaded to {folder}",
    ),
    "drift_title": (
        "Avvikelser mellan webbplatsen och listschemana",
        "Differences between the site and the list schemas",
    ),
    "drift_none": ("Inga avvikelser.", "None."),
    "severity": ("Allvar", "Severity"),
    "harmless": ("Ofarlig", "Harmless"),
    "breaking": ("Stoppar rapporterna", "Breaks the reports"),
    "open": ("Öppen", "Open"),
    "closed": ("Avslutad", "Closed"),
    "overdue": ("Försenad", "Overdue"),
    "total": ("Totalt", "Total"),
    "property": ("Uppgift", "Property"),
    "generated_at": ("Skapad", "Generated"),
    "time_zone": ("Tidszon", "Time zone"),
    "site": ("Webbplats", "Site"),
    "reference_date": ("Referensdatum", "Reference date"),
    "tool_version": ("Verktygsversion", "Tool version"),
    "definitions": ("Definitioner", "Definitions"),
    "def_current": (
        "Aktuell kunskap: status Aktuell och Giltig till tom eller tidigast referensdatumet.",
        "Current knowledge: status Aktuell (current) and Valid until empty or on/after the reference date.",
    ),
    "def_open": (
        "Öppen återkoppling: status Ny eller Pågående.",
        "Open feedback: status Ny (new) or Pågående (in progress).",
    ),
    "def_overdue": (
        "Försenad: öppen och Sista datum före referensdatumet (webbplatsens tidszon).",
        "Overdue: open and Due date before the reference date (site time zone).",
    ),
}


def normalise_language(language: str | None) -> str:
    """'sv' or 'en' from a setting value such as 'EN', 'en-GB' or None (→ 'sv')."""
    lang = (language or "sv").strip().lower()[:2]
    return lang if lang in LANGUAGES else "sv"


_LABELS: dict[str, Text] = {key: Text(sv, en) for key, (sv, en) in _PAIRS.items()}


def label(key: str, language: str = "sv", **fmt: object) -> str:
    """The user-facing text for `key` in `language`, formatted with `fmt`."""
    return _LABELS[key].render(language, **fmt)


def choice_label(value: str, language: str, translations: Mapping[str, str]) -> str:
    """A choice value as shown: the schema's English label when `language` is 'en' and one exists."""
    if normalise_language(language) == "en":
        return translations.get(value, value)
    return value
