"""Files in the site's default document library: folders, uploads, downloads and versions.

Uploads never leave a half-written workbook behind:

* up to `chunk_size` bytes: one ``Files/add(url=…,overwrite=true)`` — SharePoint swaps the content
  atomically and keeps the previous file as a version;
* above it: an upload session (``startUpload`` / ``continueUpload`` / ``finishUpload``) on the
  *existing* file when there is one. SharePoint changes the content only on ``finishUpload``
  [MS docs: File.StartUpload/ContinueUpload/FinishUpload], so a failure half way leaves the
  previous workbook as it was; the session is then cancelled (``CancelUpload``). office365's own
  ``Folder.upload_file`` is not used for this because it first replaces the file with an empty
  one (``Files/add`` with no body), which would destroy the previous workbook on a failure.
  A file that did not exist before gets its session under a temporary name in the same folder
  (``sp-sync-tmp-<id>-<name>``) and is moved into place with ``MoveTo(newurl=…,flags=1)`` only
  when complete [MS docs: working with folders and files with REST], so a process killed half
  way leaves no empty or partial file under the real name (issue 11 item 6); a failed session
  removes its temporary file, a killed one leaves it for the next publish to remove
  (``TEMP_PREFIX``). No leading period: older SharePoint refuses names that start with one.

Chunk requests are not retried: a chunk whose response was lost may have been stored, and a
repeat would then be refused for its offset. The caller (sp_sync.report.publish) reports an UploadError.
"""

from __future__ import annotations

import json as json_module
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sp_sync.errors import NotFoundError, SpSyncError
from sp_sync.i18n import Text, log_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    import requests

__all__ = ["DEFAULT_CHUNK_SIZE", "TEMP_PREFIX", "FileVersionInfo", "FilesMixin", "StoredFileInfo"]

log = logging.getLogger(__name__)

# What each request does, named in error messages and retry warnings (both languages).
_OP_LIBRARY = Text(
    sv="läsning av standarddokumentbiblioteket", en="reading the default document library"
)
_OP_CHECK_FOLDER = Text(sv="kontroll av en mapp", en="checking a folder")
_OP_CREATE_FOLDER = Text(sv="skapande av mappen {folder}", en="creating the folder {folder}")
_OP_CHECK_FILE = Text(sv="kontroll av en fil", en="checking a file")
_OP_LIST_FILES = Text(sv="listning av filerna i {folder}", en="listing the files in {folder}")
_OP_DOWNLOAD = Text(sv="hämtning av {url}", en="downloading {url}")
_OP_VERSIONS = Text(sv="läsning av versionerna av {url}", en="reading the versions of {url}")
_OP_DELETE = Text(sv="borttagning av {url}", en="deleting {url}")
_OP_UPLOAD = Text(sv="uppladdning av {name}", en="uploading {name}")
_OP_CREATE_FILE = Text(sv="skapande av {name}", en="creating {name}")
_OP_UPLOAD_CHUNK = Text(
    sv="uppladdning av {name} (byte {start}–{end} av {total})",
    en="uploading {name} (bytes {start}–{end} of {total})",
)
_OP_FINISH_UPLOAD = Text(
    sv="avslutning av uppladdningen av {name}", en="finishing the upload of {name}"
)
_CANCEL_FAILED = Text(
    sv="Kunde inte avbryta uppladdningssessionen för {url}: {error}",
    en="Could not cancel the upload session for {url}: {error}",
)
_PLACEHOLDER_LEFT = Text(
    sv="Kunde inte ta bort den tomma platshållaren {url}: {error}",
    en="Could not remove the empty placeholder {url}: {error}",
)
_OP_CANCEL_UPLOAD = Text(
    sv="avbrytande av en uppladdningssession", en="cancelling an upload session"
)

_OP_UPDATE_COLUMNS = Text(
    sv="uppdatering av filkolumner i {folder} ({count} st.)",
    en="updating file columns in {folder} ({count} in all)",
)
_OP_MOVE = Text(sv="flytt av {source} till {target}", en="moving {source} to {target}")
_BATCH_PARTS = Text(
    sv="SharePoint svarade med {parts} delar på en $batch med {requests} anrop",
    en="$batch returned {parts} parts for {requests} requests",
)
_LISTING_FAILED = Text(
    sv="listningen av filerna i {folder} misslyckades: ”{message}”",
    en="listing the files in {folder} failed: {message}",
)
_OP_READ = Text(sv="läsning av {url}", en="reading {url}")

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
#: Names of new files while their chunked upload runs (see the module docstring).
TEMP_PREFIX = "sp-sync-tmp-"

#: progress(done_bytes, total_bytes)
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class StoredFileInfo:
    """A file as SharePoint reports it after an upload."""

    name: str
    server_relative_url: str
    size: int
    version_label: str | None = None
    #: SharePoint's ETag of the content ("{GUID},N"); it changes whenever the file is replaced.
    etag: str | None = None
    #: The id of the file's list item in its library (from `list_files`), for its columns.
    item_id: int | None = None


@dataclass(frozen=True)
class FileVersionInfo:
    """One previous version of a file (SharePoint's ``Versions`` collection)."""

    version_label: str
    size: int
    created: str | None = None


#: The one query of a folder's files: what publishing compares, with each file's item id.
_FILE_LISTING = {
    "$select": "Name,ServerRelativeUrl,Length,UIVersionLabel,ETag,ListItemAllFields/Id",
    "$expand": "ListItemAllFields",
}
_NOMETADATA = "application/json;odata=nometadata"


def _item_id(item: Any) -> int | None:
    if isinstance(item, dict):
        value = item.get("Id", item.get("ID"))
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return None


def _literal(value: str) -> str:
    from sp_sync.sharepoint.client import quote_path_literal

    return quote_path_literal(value)


def _unwrap(payload: Any) -> Any:
    from sp_sync.sharepoint.client import unwrap_verbose

    return unwrap_verbose(payload)


class FilesMixin:
    """Folder and file methods for SharePointClient (see the module docstring)."""

    # Provided by ClientCore.
    site_url: str
    _raw: Callable[..., requests.Response]
    _raw_json: Callable[..., Any]
    _get_json: Callable[..., Any]

    # -- folders ----------------------------------------------------------------------------

    def get_default_library_root(self) -> str:
        """Server-relative URL of the root folder of the site's default document library."""
        data = self._get_json(
            "/_api/web/defaultDocumentLibrary/RootFolder",
            description=_OP_LIBRARY,
        )
        return str(data["ServerRelativeUrl"]).rstrip("/")

    def get_default_library_title(self) -> str:
        """The title of the site's default document library ("Dokument" on a Swedish site)."""
        data = self._get_json(
            "/_api/web/defaultDocumentLibrary",
            params={"$select": "Title"},
            description=_OP_LIBRARY,
        )
        return str(data["Title"])

    def folder_exists(self, server_relative_url: str) -> bool:
        """True when the folder exists (raises when SharePoint cannot tell)."""
        try:
            data = self._get_json(
                f"/_api/web/getFolderByServerRelativeUrl({_literal(server_relative_url)})",
                description=_OP_CHECK_FOLDER,
            )
        except NotFoundError:
            return False
        return bool(data.get("Exists", True)) if isinstance(data, dict) else True

    def ensure_folder(self, path: str) -> str:
        """Create `path` (nested allowed, e.g. "Sammanställningar/2026") in the default library.

        Existing folders are kept. Returns the folder's server-relative URL.
        """
        current = self.get_default_library_root()
        for segment in [p for p in path.strip("/").split("/") if p]:
            current = f"{current}/{segment}"
            if not self.folder_exists(current):
                log.info("Creating folder %s", current)
                self._raw(
                    "POST",
                    "/_api/web/folders",
                    json={"__metadata": {"type": "SP.Folder"}, "ServerRelativeUrl": current},
                    description=_OP_CREATE_FOLDER.fill(folder=current),
                    write=True,
                )
        return current

    # -- files ------------------------------------------------------------------------------

    def file_exists(self, server_relative_url: str) -> bool:
        """True when the file exists."""
        try:
            data = self._get_json(
                f"/_api/web/getFileByServerRelativeUrl({_literal(server_relative_url)})",
                description=_OP_CHECK_FILE,
            )
        except NotFoundError:
            return False
        return bool(data.get("Exists", True)) if isinstance(data, dict) else True

    def list_files(self, folder: str) -> list[StoredFileInfo]:
        """The files directly in a folder (one request); an empty list when the folder is missing."""
        try:
            data = self._get_json(
                f"/_api/web/getFolderByServerRelativeUrl({_literal(folder.rstrip('/'))})/Files",
                params=_FILE_LISTING,
                description=_OP_LIST_FILES.fill(folder=folder),
            )
        except NotFoundError:
            return []
        return self._file_rows(data, folder)

    def _file_rows(self, data: Any, folder: str) -> list[StoredFileInfo]:
        rows = data.get("results", data.get("value", [])) if isinstance(data, dict) else data
        return [self._file_info(r, str(r.get("Name", "")), folder, 0) for r in rows or []]

    def update_file_fields(
        self, folder: str, values: Mapping[int, Mapping[str, str]]
    ) -> tuple[list[StoredFileInfo], list[str]]:
        """Set columns of files in the default library without a new version, in ONE request.

        `values` maps a file's list item id (StoredFileInfo.item_id) to form values as the site
        shows them (text). One `$batch`: a changeset of ``ValidateUpdateListItem`` calls with
        ``bNewDocumentUpdate=true``, which updates the item without a new version
        [MS docs: ListItem.ValidateUpdateListItem, "whether the list item is a document being
        updated after upload"; R. Schouten 2018: it "will call the UpdateOverwriteVersion
        method"], then the folder's files again, because a metadata update may change a file's
        ETag. Returns that listing and the problems SharePoint reported per field (a column
        that does not exist yet, a value it refused); raises for a failed request.
        """
        boundary, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        base = f"{self.site_url}/_api/web"
        writes: list[str] = []
        for item_id, fields in values.items():
            body = json_module.dumps(
                {
                    "formValues": [
                        {"FieldName": name, "FieldValue": value} for name, value in fields.items()
                    ],
                    "bNewDocumentUpdate": True,
                }
            )
            writes += [
                f"--{changeset}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                "",
                f"POST {base}/defaultDocumentLibrary/items({int(item_id)})"
                "/ValidateUpdateListItem HTTP/1.1",
                f"Content-Type: {_NOMETADATA}",
                f"Accept: {_NOMETADATA}",
                "",
                body,
            ]
        listing = f"{base}/getFolderByServerRelativeUrl({_literal(folder.rstrip('/'))})/Files"
        query = "&".join(f"{k}={quote(v, safe=',/')}" for k, v in _FILE_LISTING.items())
        lines: list[str] = []
        if writes:
            lines += [
                f"--{boundary}",
                f'Content-Type: multipart/mixed; boundary="{changeset}"',
                "Content-Transfer-Encoding: binary",
                "",
                *writes,
                f"--{changeset}--",
                "",
            ]
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"GET {listing}?{query} HTTP/1.1",
            f"Accept: {_NOMETADATA}",
            "",
            "",
            f"--{boundary}--",
        ]
        response = self._raw(
            "POST",
            "/_api/$batch",
            data="\r\n".join(lines).encode("utf-8"),
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            description=_OP_UPDATE_COLUMNS.fill(count=len(values), folder=folder),
            write=True,
        )
        from sp_sync.sharepoint.client import parse_error_body
        from sp_sync.sharepoint.items import parse_batch_response

        parts = parse_batch_response(response.content, response.headers.get("Content-Type", ""))
        if len(parts) != len(values) + 1:
            raise SpSyncError(
                _BATCH_PARTS.fill(parts=len(parts), requests=len(values) + 1), status=502
            )
        problems: list[str] = []
        for (status, _headers, body_bytes), item_id in zip(parts, values, strict=False):
            if status >= 400:
                _code, message = parse_error_body(body_bytes)
                problems.append(f"item {item_id}: HTTP {status} {message}")
                continue
            payload = json_module.loads(body_bytes.decode("utf-8") or "{}")
            results = _unwrap(payload)
            results = (
                results.get("ValidateUpdateListItem", results)
                if isinstance(results, dict)
                else results
            )
            if isinstance(results, dict):
                results = results.get("results", results.get("value", []))
            for r in results or []:
                if isinstance(r, dict) and r.get("HasException"):
                    problems.append(
                        f"item {item_id}, {r.get('FieldName')}: {r.get('ErrorMessage')}"
                    )
        status, _headers, body_bytes = parts[-1]
        if status >= 400:
            _code, message = parse_error_body(body_bytes)
            raise SpSyncError(_LISTING_FAILED.fill(folder=folder, message=message), status=status)
        files = self._file_rows(json_module.loads(body_bytes.decode("utf-8") or "{}"), folder)
        return files, problems

    def download_file(self, server_relative_url: str) -> bytes:
        """The file's current content (raises NotFoundError when it does not exist)."""
        response = self._raw(
            "GET",
            f"/_api/web/getFileByServerRelativeUrl({_literal(server_relative_url)})/$value",
            description=_OP_DOWNLOAD.fill(url=server_relative_url),
        )
        return bytes(response.content)

    def get_file_versions(self, server_relative_url: str) -> list[FileVersionInfo]:
        """Previous versions of a file, oldest first (the current one is not included)."""
        data = self._get_json(
            f"/_api/web/getFileByServerRelativeUrl({_literal(server_relative_url)})/Versions",
            description=_OP_VERSIONS.fill(url=server_relative_url),
        )
        rows = data.get("results", []) if isinstance(data, dict) else list(data or [])
        return [
            FileVersionInfo(
                version_label=str(r.get("VersionLabel", "")),
                size=int(r.get("Size") or 0),
                created=r.get("Created"),
            )
            for r in rows
        ]

    def delete_file(self, server_relative_url: str) -> None:
        """Delete a file; succeeds when it is already gone."""
        try:
            self._raw(
                "POST",
                f"/_api/web/getFileByServerRelativeUrl({_literal(server_relative_url)})",
                headers={"X-HTTP-Method": "DELETE", "IF-MATCH": "*"},
                description=_OP_DELETE.fill(url=server_relative_url),
                write=True,
            )
        except NotFoundError:
            pass

    def upload_file(
        self,
        folder: str,
        name: str,
        data: bytes,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: ProgressCallback | None = None,
    ) -> StoredFileInfo:
        """Upload `data` as `folder`/`name`, overwriting (SharePoint keeps the old one as a version).

        `folder` is a server-relative folder URL (see :meth:`ensure_folder`). Files larger than
        `chunk_size` go through an upload session that changes the content only at the end.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        folder = folder.rstrip("/")
        total = len(data)
        if total <= chunk_size:
            payload = self._raw_json(
                "POST",
                f"/_api/web/getFolderByServerRelativeUrl({_literal(folder)})"
                f"/Files/add(url={_literal(name)},overwrite=true)",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                description=_OP_UPLOAD.fill(name=name),
                write=True,
            )
            if progress:
                progress(total, total)
            return self._file_info(_unwrap(payload), name, folder, total)
        return self._upload_chunked(folder, name, data, chunk_size, progress)

    def _file_info(self, entity: Any, name: str, folder: str, size: int) -> StoredFileInfo:
        entity = entity if isinstance(entity, dict) else {}
        return StoredFileInfo(
            name=str(entity.get("Name") or name),
            server_relative_url=str(entity.get("ServerRelativeUrl") or f"{folder}/{name}"),
            size=int(entity.get("Length") or size),
            version_label=entity.get("UIVersionLabel"),
            etag=entity.get("ETag"),
            item_id=_item_id(entity.get("ListItemAllFields")),
        )

    def move_file(self, source_url: str, target_url: str) -> None:
        """Move (or rename) a file, replacing a file at `target_url` (``MoveTo`` flags=1)."""
        self._raw(
            "POST",
            f"/_api/web/getFileByServerRelativeUrl({_literal(source_url)})"
            f"/MoveTo(newurl={_literal(target_url)},flags=1)",
            description=_OP_MOVE.fill(source=source_url, target=target_url),
            write=True,
        )

    def _upload_chunked(
        self,
        folder: str,
        name: str,
        data: bytes,
        chunk_size: int,
        progress: ProgressCallback | None,
    ) -> StoredFileInfo:
        if self.file_exists(f"{folder}/{name}"):
            return self._upload_session(folder, name, data, chunk_size, progress, create=False)
        # A new file: complete under a temporary name first, then moved into place.
        temp = f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
        self._upload_session(folder, temp, data, chunk_size, progress, create=True)
        target = f"{folder}/{name}"
        try:
            self.move_file(f"{folder}/{temp}", target)
        except SpSyncError:
            try:
                self.delete_file(f"{folder}/{temp}")
            except SpSyncError as exc:
                log.warning("Could not remove the temporary file %s/%s: %s", folder, temp, exc)
            raise
        # The move may give the file another ETag; the caller records the one it has now.
        entity = self._get_json(
            f"/_api/web/getFileByServerRelativeUrl({_literal(target)})",
            description=_OP_READ.fill(url=target),
        )
        return self._file_info(entity, name, folder, len(data))

    def _upload_session(
        self,
        folder: str,
        name: str,
        data: bytes,
        chunk_size: int,
        progress: ProgressCallback | None,
        *,
        create: bool,
    ) -> StoredFileInfo:
        """One upload session on `folder`/`name`; `create` makes the (empty) file first."""
        file_url = f"{folder}/{name}"
        created = False
        if create:
            # A session needs a file to hang on; an empty placeholder has nothing to protect.
            self._raw(
                "POST",
                f"/_api/web/getFolderByServerRelativeUrl({_literal(folder)})"
                f"/Files/add(url={_literal(name)},overwrite=true)",
                data=b"",
                headers={"Content-Type": "application/octet-stream"},
                description=_OP_CREATE_FILE.fill(name=name),
                write=True,
            )
            created = True
        target = f"/_api/web/getFileByServerRelativeUrl({_literal(file_url)})"
        upload_id = str(uuid.uuid4())
        total = len(data)
        offset = 0
        try:
            entity: Any = None
            while offset < total:
                chunk = data[offset : offset + chunk_size]
                if offset == 0:
                    op = f"startUpload(uploadID='{upload_id}')"
                elif offset + len(chunk) >= total:
                    op = f"finishUpload(uploadID='{upload_id}',fileOffset={offset})"
                else:
                    op = f"continueUpload(uploadID='{upload_id}',fileOffset={offset})"
                # The finishing chunk's answer is the file: decoded inside the retry loop.
                call = self._raw_json if op.startswith("finishUpload") else self._raw
                answer = call(
                    "POST",
                    f"{target}/{op}",
                    data=chunk,
                    headers={"Content-Type": "application/octet-stream"},
                    description=_OP_UPLOAD_CHUNK.fill(
                        name=name, start=offset, end=offset + len(chunk), total=total
                    ),
                    write=True,
                    # A throttled chunk was not accepted: sending it again at the same offset
                    # is safe. Anything else (a dropped connection) may have been applied.
                    retry="refused",
                )
                offset += len(chunk)
                if progress:
                    progress(offset, total)
                if op.startswith("finishUpload"):
                    entity = _unwrap(answer)
            if entity is None:
                # Exactly one chunk larger than chunk_size cannot happen; a start-only session
                # would still need finishing. Finish with an empty last fragment.
                entity = self._raw_json(
                    "POST",
                    f"{target}/finishUpload(uploadID='{upload_id}',fileOffset={offset})",
                    data=b"",
                    headers={"Content-Type": "application/octet-stream"},
                    description=_OP_FINISH_UPLOAD.fill(name=name),
                    write=True,
                    retry=False,
                )
                entity = _unwrap(entity)
        except SpSyncError:
            self._abandon_upload(target, upload_id, file_url, created)
            raise
        return self._file_info(entity, name, folder, total)

    def _abandon_upload(self, target: str, upload_id: str, file_url: str, created: bool) -> None:
        try:
            self._raw(
                "POST",
                f"{target}/CancelUpload",
                json={"uploadId": upload_id},
                description=_OP_CANCEL_UPLOAD,
                write=True,
            )
        except SpSyncError as exc:
            log.warning(
                "Could not cancel the upload session for %s: %s",
                file_url,
                exc,
                extra=log_text(_CANCEL_FAILED.fill(url=file_url, error=exc.as_text())),
            )
        if created:
            try:
                self.delete_file(file_url)
            except SpSyncError as exc:
                log.warning(
                    "Could not remove the empty placeholder %s: %s",
                    file_url,
                    exc,
                    extra=log_text(_PLACEHOLDER_LEFT.fill(url=file_url, error=exc.as_text())),
                )
