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
    "LOG_TEXT",
    "Plural",
    "Text",
    "choice_label",
    "format_number",
    "format_seconds",
    "format_size",
    "label",
    "log_text",
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
        """The text in `language`, formatted with `fmt`; a `Text` argument contributes its own
        rendering in the same language (a translated sentence inside a translated sentence)."""
        lang = normalise_language(language)
        text = self.en if lang == "en" else self.sv
        if not fmt:
            return text
        values = {k: v.render(lang) if isinstance(v, Text) else v for k, v in fmt.items()}
        return text.format(**values)

    def fill(self, **fmt: object) -> Text:
        """Both languages formatted now: the finished sentence an error or a log line carries
        until someone renders it in the reader's language."""
        return Text(sv=self.render("sv", **fmt), en=self.render("en", **fmt))


#: The log-record attribute holding a warning's `Text`: the record's own message stays English
#: (the Functions app's logs, see the README), the command line renders this one instead.
LOG_TEXT = "sp_sync_text"


def log_text(text: Text) -> dict[str, Text]:
    """`extra=` for a log call whose message a person may read on the command line."""
    return {LOG_TEXT: text}


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

    def text(self, count: int) -> Text:
        """The counted noun in both languages, for a sentence rendered later."""
        return Text(sv=self.render("sv", count), en=self.render("en", count))


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


def seconds_text(seconds: float) -> Text:
    """A duration as a `Text` for a message that is rendered later, in either language."""
    return Text(sv=format_seconds(seconds, "sv"), en=format_seconds(seconds, "en"))


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
    "last_checked": ("Senast kontrollerad", "Last checked"),
    "about_freshness": (
        "Tiderna gäller när arbetsboken skapades. En ny version laddas upp bara när innehållet "
        "ändras; biblioteket visar varje natts kontroll i kolumnen ”Senast kontrollerad”.",
        "The times are those of when this workbook was generated. A new version is uploaded only "
        "when its content changes; the library shows each night's check in its column "
        "“Senast kontrollerad” (last checked).",
    ),
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
    # issue 12: headline block, department matrix, summaries, definitions (report team)
    "sheet_summary": ("Sammanfattning", "Summary"),
    "sheet_prep": ("Inför dialogen", "Dialogue preparation"),
    "title_headline": ("Läget {date}", "Status on {date}"),
    "title_department_matrix": (
        "Återkoppling per mottagande avdelning",
        "Feedback by receiving department",
    ),
    "title_team_summary": ("Per team", "By team"),
    "title_county_table": ("Per län", "By county"),
    "title_department_summary": (
        "Återkoppling till avdelning {name} per län",
        "Feedback to the {name} department by county",
    ),
    "title_prep": ("Inför dialogen – {name}", "Preparing the dialogue – {name}"),
    "title_recent_knowledge": (
        "Senast tillagd aktuell kunskap",
        "Most recently added current knowledge",
    ),
    "title_definitions": ("Så räknas måtten", "How the measures are counted"),
    "headline_open": ("Öppen återkoppling (inkl. försenad)", "Open feedback (incl. overdue)"),
    "headline_overdue": ("– varav försenad", "– of which overdue"),
    "headline_over_30": (
        "– varav försenad mer än 30 dagar",
        "– of which overdue more than 30 days",
    ),
    "headline_over_90": (
        "– varav försenad mer än 90 dagar",
        "– of which overdue more than 90 days",
    ),
    "headline_oldest": ("Äldsta försening (dagar)", "Oldest overdue (days)"),
    "headline_next_30": ("Dialoger kommande 30 dagar", "Dialogues in the next 30 days"),
    "headline_next_60": ("Dialoger kommande 60 dagar", "Dialogues in the next 60 days"),
    "headline_missed": (
        "Passerade, ej genomförda dialoger",
        "Dialogues past their planned date, not held",
    ),
    "headline_added": ("Ny kunskap senaste 30 dagarna", "Knowledge added in the last 30 days"),
    "headline_quality": ("Datakvalitetsproblem att rätta", "Data-quality problems to fix"),
    "measure": ("Mått", "Measure"),
    "definition": ("Definition", "Definition"),
    "dates_used": ("Datum som används", "Dates used"),
    "open_in_time": ("Öppen i tid", "Open, on time"),
    "overdue_over_30": ("Försenad > 30 dagar", "Overdue > 30 days"),
    "overdue_over_90": ("Försenad > 90 dagar", "Overdue > 90 days"),
    "oldest_overdue_days": ("Äldsta försening (dagar)", "Oldest overdue (days)"),
    "closed_30d": ("Avslutad senaste 30 dagarna", "Closed in the last 30 days"),
    "overdue_team": ("Försenad – {name}", "Overdue – {name}"),
    "no_department": ("(ingen avdelning angiven)", "(no department given)"),
    "dialogues_missed": (
        "Passerade, ej genomförda dialoger",
        "Dialogues past their planned date, not held",
    ),
    "dialogue_state": ("Läge", "State"),
    "state_held": ("Genomförd", "Held"),
    "state_upcoming": ("Kommande", "Upcoming"),
    "state_missed": ("Passerad, ej genomförd", "Date passed, not held"),
    "state_unplanned": ("Inget planerat datum", "No planned date"),
    "created": ("Skapad", "Created"),
    "item_title": ("Postens rubrik", "Item title"),
    "matrix_legend": (
        "Färg: röd = 0 (saknas), gul = 1–2, grön = 3 eller fler poster med aktuell kunskap.",
        "Colour: red = 0 (missing), yellow = 1–2, green = 3 or more current knowledge items.",
    ),
    "overdue_legend": (
        "Färg: ljusröd = försenad mer än 30 dagar, röd = mer än 90 dagar.",
        "Colour: light red = overdue more than 30 days, red = more than 90 days.",
    ),
    "ref_date_is": ("referensdatum {date}", "reference date {date}"),
    "window_30": (
        "skapad {start} – {end} (30 dagar före skapandetiden)",
        "created {start} – {end} (30 days before generation)",
    ),
    "window_closed_30": (
        "senast ändrad {start} – {end} (listan har inget avslutsdatum)",
        "last modified {start} – {end} (the list has no closing date)",
    ),
    "window_ahead": (
        "planerat datum {start} – {end}",
        "planned date {start} – {end}",
    ),
    "window_before": ("planerat datum före {date}", "planned date before {date}"),
    "window_until": ("genomfört datum till och med {date}", "held date up to {date}"),
    "window_from": ("planerat datum från och med {date}", "planned date from {date}"),
    "window_none": ("inget datum", "no date"),
    "def_strategic": (
        "Aktuell kunskap av typen Strategiskt inspel.",
        "Current knowledge of type Strategiskt inspel (strategic input).",
    ),
    "def_added": (
        "Poster i Länskunskap (alla statusar) skapade de senaste 30 dagarna.",
        "Länskunskap items (any status) created in the last 30 days.",
    ),
    "def_phase": (
        "Fasen för länets senaste dialogomgång: högsta År, sedan senaste Planerat datum.",
        "The phase of the county's latest dialogue round: highest Year, then latest Planned date.",
    ),
    "def_next": (
        "Tidigaste Planerat datum, från referensdatumet, för en omgång utan Genomfört datum.",
        "Earliest Planned date, from the reference date on, of a round with no Date held.",
    ),
    "def_last": (
        "Senaste Genomfört datum till och med referensdatumet.",
        "Latest Date held up to the reference date.",
    ),
    "def_ahead": (
        "Omgångar utan Genomfört datum med Planerat datum inom 30 respektive 60 dagar.",
        "Rounds with no Date held planned within 30 or 60 days.",
    ),
    "def_missed": (
        "Omgångar med Planerat datum före referensdatumet men utan Genomfört datum "
        '(Läge "Passerad, ej genomförd" på Dialogplan).',
        "Rounds planned before the reference date but with no Date held "
        '(state "Date passed, not held" on the dialogue plan).',
    ),
    "def_in_time": (
        "Öppen återkoppling som inte är försenad (Sista datum tom eller tidigast referensdatumet).",
        "Open feedback that is not overdue (Due date empty or on/after the reference date).",
    ),
    "def_days_overdue": (
        "Dagar från Sista datum till referensdatumet; äldsta försening är den största. "
        "Färgen markerar mer än 30 och mer än 90 dagar.",
        "Days from the Due date to the reference date; the oldest overdue is the largest. "
        "Colour marks more than 30 and more than 90 days.",
    ),
    "def_bands": (
        "Försenad återkoppling med fler än 30 respektive 90 dagar sedan Sista datum.",
        "Overdue feedback more than 30 or 90 days past its Due date.",
    ),
    "def_closed": (
        "Återkoppling med status Klar eller Ingen åtgärd.",
        "Feedback with status Klar (done) or Ingen åtgärd (no action).",
    ),
    "def_closed_30d": (
        "Avslutad återkoppling som senast ändrades de senaste 30 dagarna.",
        "Closed feedback last modified in the last 30 days.",
    ),
    "def_share_closed": (
        "Avslutad återkoppling delat med all återkoppling för länet.",
        "Closed feedback divided by all of the county's feedback.",
    ),
    "def_open_all": (
        "Status Ny eller Pågående, försenad eller inte: Öppen betyder detta på alla blad och diagram.",
        "Status Ny (new) or Pågående (in progress), overdue or not: Open means this on every sheet and chart.",
    ),
    "def_quality": (
        "Antal rader på bladet Datakvalitet; en post kan ha flera problem.",
        "Rows on the Data quality sheet; one item can have several problems.",
    ),
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
