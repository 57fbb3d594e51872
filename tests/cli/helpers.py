"""Language checks shared by the command-line tests: is a text entirely Swedish or English?"""

from __future__ import annotations

import re

#: Everyday English words that have no place in a Swedish sentence (none is also a Swedish word).
ENGLISH_WORDS = frozenset(
    re.findall(
        r"\w+",
        "the is was were not could failed found refused unreachable retrying attempt attempts "
        "reading creating deleting uploading does has have of and with to on after before "
        "returned nothing needs cannot through waiting limit reached would more exist exists "
        "missing file folder list lists site setting settings error warning rows items done "
        "read write access please must should will this that which when from",
    )
)
#: Everyday Swedish words that have no place in an English sentence.
SWEDISH_WORDS = frozenset(
    re.findall(
        r"\w+",
        "och inte för till på av kunde går att nå försök gav upp efter väntan webbplatsen fel "
        "varning hämta identiteten listan listor rader klar misslyckades finns saknas som med "
        "arbetsböcker uppladdade körning",
    )
)
_VERBATIM = re.compile(
    r"`[^`]*`|'[^']*'|”[^”]*”|\{[^}]*\}|--[\w-]+|https?://\S+|\S*/\S*|\w+_\w+|\w+\.\w+(?:\.\w+)*"
)


def words(text: str) -> set[str]:
    """The lower-case words of `text`, leaving out what is quoted or named verbatim:
    `commands`, 'names', ”server text”, {placeholders}, --options, URLs, paths, module names."""
    return set(re.findall(r"\b[a-zåäö]+\b", _VERBATIM.sub(" ", text)))


def english_in(swedish: str) -> set[str]:
    """English words left in a Swedish text."""
    return words(swedish) & ENGLISH_WORDS


def swedish_in(english: str) -> set[str]:
    """Swedish words (or letters å, ä, ö) in an English text."""
    found = words(english) & SWEDISH_WORDS
    found |= {w for w in words(english) if re.search("[åäö]", w)}
    return found
