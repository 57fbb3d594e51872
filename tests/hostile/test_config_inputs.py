"""Malformed settings, schema files and HTTP trigger bodies: only our errors, with clear messages.

* `Settings.from_env` with garbage values → a Settings or a SettingsError naming the setting.
* Mutated list_schemas/*.yaml → a SchemaSet or a SchemaError whose problems say file:line.
* Random bytes to the run trigger → a 4xx answer, never an exception.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp_sync.errors import SchemaError, SettingsError
from sp_sync.run import jobs
from sp_sync.schema import default_schema_dir, load_schemas
from sp_sync.settings import SETTINGS, Settings
from tests.hostile.helpers import HOSTILE, hostile, hostile_text

_NAMES = [s.name for s in SETTINGS]

_TRICKY_VALUES = (
    "",
    " ",
    "\t",
    "http://[::1",
    "https://[zz]/x",
    "http://:80",
    "https://a:99999/x",
    "https://a:-1/",
    "https://contoso.sharepoint.com/sites/x?a=1",
    "https://contoso.sharepoint.com/sites/x#f",
    "ftp://x/y",
    "https://",
    "//host/path",
    "javascript:alert(1)",
    "https://ä.example/ö",
    "0",
    "-1",
    "9" * 40,
    "1e3",
    "½",
    "٣",
    "NaN",
    "certificate",
    "CERTIFICATE",
    "managed-identity",
    "azure",
    "AZURE",
    "en",
    "EN",
    "sv ",
    "0 0 2 * * *",
    "* * * *",
    "0 0 2 * * * *",
    "../../etc/passwd",
    "/dev/null",
    "/",
    "C:\\x",
    "\x00",
    "a\x00b",
    "a|b",
    "sp-sync-state",
    "Ab",
    "a--b",
    "x" * 64,
    "=1+1",
    "<script>",
    "Sammanställningar/../x",
    "~x",
    "%2e%2e",
)


def _value() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_TRICKY_VALUES), hostile_text(huge=False, max_size=40))


@st.composite
def _env(draw: st.DrawFn) -> dict[str, str]:
    env = {"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/x"}
    for name in draw(
        st.lists(st.sampled_from([*_NAMES, "AzureWebJobsStorage"]), max_size=6, unique=True)
    ):
        env[name] = draw(_value())
    return env


def _check_settings(env: dict[str, str]) -> None:
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        assert exc.setting in {*_NAMES, "SP_SYNC_STATE_CONNECTION"}, exc.setting
        assert exc.setting in str(exc)
        assert exc.problem.strip()


@HOSTILE
@given(_env())
def test_garbage_settings_give_settings_error_naming_the_setting(env: dict[str, str]) -> None:
    _check_settings(env)


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("value", _TRICKY_VALUES)
def test_each_setting_with_each_tricky_value(name: str, value: str) -> None:
    _check_settings({"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/x", name: value})


_SITES_FILES = (
    b"",
    b"[]",
    b"{}",
    b"null",
    b"42",
    b"- 1\n- 2",
    b"sites: x",
    b"- url: 'http://[::1'\n",
    b"- url: https://a/x\n- url: https://A/x/\n",
    b"- url: https://a/x\n  lists: 7\n",
    b"{: :",
    b"\xff\xfe\x00b\x00a\x00d",
    b"\xc3\x28 invalid utf-8",
    b"- !!python/object/apply:os.system ['true']",
    b"&a [*a]",
    b"- url: " + b"x" * 5000,
)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("content", _SITES_FILES)
def test_garbage_sites_file_gives_settings_error(
    tmp_path: Path, suffix: str, content: bytes
) -> None:
    path = tmp_path / f"sites{suffix}"
    path.write_bytes(content)
    _check_settings({"SP_SYNC_SITES_FILE": str(path)})


# ------------------------------------------------------------------------------------ schemas

# "file.yaml, line 3" — or, for a character YAML's reader refuses before it has lines, "position 7".
_LINE_RE = re.compile(r"\.ya?ml\D{0,8}\d+|position \d+")


@st.composite
def _mutation(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, mutated text) of one list_schemas file."""
    files = sorted(p.name for p in default_schema_dir().glob("*.yaml"))
    name = draw(st.sampled_from(files))
    lines = (default_schema_dir() / name).read_text(encoding="utf-8").splitlines()
    kind = draw(
        st.sampled_from(["delete", "duplicate", "replace", "insert", "indent", "truncate", "swap"])
    )
    i = draw(st.integers(0, len(lines) - 1))
    junk = draw(
        st.one_of(
            st.sampled_from(
                [
                    "- ",
                    ":",
                    "  :",
                    "{",
                    "[",
                    "]",
                    "&x",
                    "*x",
                    "!!binary x",
                    "? ",
                    "|",
                    ">",
                    "type: nonsense",
                    "name: ",
                    "choices: {ref: nowhere}",
                    "required: maybe",
                    "max_length: -5",
                    "lookup_list: Missing",
                    "  - name: Title",
                    "\t",
                ]
            ),
            hostile_text(huge=False, max_size=30),
        )
    )
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "replace":
        lines[i] = junk
    elif kind == "insert":
        lines.insert(i, junk)
    elif kind == "indent":
        lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
    elif kind == "truncate":
        lines = lines[:i]
    else:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return name, "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def schema_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("schemas")
    for p in default_schema_dir().glob("*.yaml"):
        shutil.copy(p, target / p.name)
    return target


@hostile(80)
@given(mutation=_mutation())
def test_mutated_schema_gives_schema_error_with_file_and_line(
    schema_copy: Path, mutation: tuple[str, str]
) -> None:
    name, text = mutation
    original = (default_schema_dir() / name).read_text(encoding="utf-8")
    (schema_copy / name).write_text(text, encoding="utf-8")
    try:
        load_schemas(schema_copy)
    except SchemaError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert re.search(r"\w+\.ya?ml", problem), problem
        # File-level consequences ("has no 'Title' column") follow a located problem; at least
        # the first problem points at a line.
        assert any(_LINE_RE.search(p) for p in exc.problems), exc.problems
    finally:
        (schema_copy / name).write_text(original, encoding="utf-8")


@pytest.mark.parametrize(
    "content", [b"", b"\xff\xfe garbage", b"\x00\x00", b"[1, 2", b"list: 7\n", b"- a\n- b\n"]
)
def test_binary_or_empty_schema_file(
    schema_copy: Path, content: bytes, request: pytest.FixtureRequest
) -> None:
    target = schema_copy / "lanskunskap.yaml"
    original = target.read_bytes()
    target.write_bytes(content)
    try:
        with pytest.raises(SchemaError) as info:
            load_schemas(schema_copy)
        assert any("lanskunskap.yaml" in p for p in info.value.problems)
    finally:
        target.write_bytes(original)


# ------------------------------------------------------------------------------------ HTTP


def _no_runtime() -> Any:
    """A runtime loader that fails loudly if a malformed request gets past parsing."""
    raise AssertionError("a malformed request must be refused before settings are read")


_JSON_BODIES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | hostile_text(huge=False, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["sites", "lists", "mode", "full", "x", ""]) | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


def _bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        _JSON_BODIES.map(lambda d: json.dumps(d).encode()),
        st.sampled_from(
            [
                b"{",
                b"\xef\xbb\xbf{}",
                b'{"mode": "full", "mode": "x"}',
                b"[]",
                b"null",
                b'{"sites": ["' + b"a" * 500 + b'"]}',
                b"1" * 70_000,
                b'{"sites": [null]}',
                b'{"lists": []}',
                b'{"mode": 1e999}',
                b'"\\ud800"',
                b'{"sites": "x"}',
            ]
        ),
    )


@HOSTILE
@given(
    body=_bodies(),
    content_type=st.sampled_from(
        [None, "application/json", "text/plain", "application/json; charset=utf-8", "", "x" * 300]
    ),
)
def test_random_trigger_bodies_get_an_answer_never_an_exception(
    body: bytes, content_type: str | None
) -> None:
    try:
        request = jobs.parse_run_request(body, content_type)
    except ValueError as exc:  # the documented refusal (carries the HTTP status)
        status = getattr(exc, "status", 400)
        assert 400 <= status < 500
        assert str(exc)
        answer = jobs.handle_run_request(
            body, content_type, "http://localhost/api/run", load_runtime=_no_runtime
        )
        assert 400 <= answer.status < 500 and answer.body.get("error")
        return
    assert set(request) == {"sites", "lists", "full"}
    assert isinstance(request["full"], bool)
    for key in ("sites", "lists"):
        assert request[key] is None or all(isinstance(v, str) and v for v in request[key])
