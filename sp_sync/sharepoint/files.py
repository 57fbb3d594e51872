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
  A file that did not exist before is created empty first and removed again if the session fails.

Chunk requests are not retried: a chunk whose response was lost may have been stored, and a
repeat would then be refused for its offset. The caller (sp_sync.report.publish) reports an UploadError.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sp_sync.errors import NotFoundError, SpSyncError
from sp_sync.i18n import Text, log_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    import requests

__all__ = ["DEFAULT_CHUNK_SIZE", "FileVersionInfo", "FilesMixin", "StoredFileInfo"]

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

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024

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


@dataclass(frozen=True)
class FileVersionInfo:
    """One previous version of a file (SharePoint's ``Versions`` collection)."""

    version_label: str
    size: int
    created: str | None = None


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
    _get_json: Callable[..., Any]

    # -- folders ----------------------------------------------------------------------------

    def get_default_library_root(self) -> str:
        """Server-relative URL of the root folder of the site's default document library."""
        data = self._get_json(
            "/_api/web/defaultDocumentLibrary/RootFolder",
            description=_OP_LIBRARY,
        )
        return str(data["ServerRelativeUrl"]).rstrip("/")

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
                params={"$select": "Name,ServerRelativeUrl,Length,UIVersionLabel,ETag"},
                description=_OP_LIST_FILES.fill(folder=folder),
            )
        except NotFoundError:
            return []
        rows = data.get("results", []) if isinstance(data, dict) else list(data or [])
        return [self._file_info(r, str(r.get("Name", "")), folder, 0) for r in rows]

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
            response = self._raw(
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
            return self._file_info(_unwrap(response.json()), name, folder, total)
        return self._upload_chunked(folder, name, data, chunk_size, progress)

    def _file_info(self, entity: Any, name: str, folder: str, size: int) -> StoredFileInfo:
        entity = entity if isinstance(entity, dict) else {}
        return StoredFileInfo(
            name=str(entity.get("Name") or name),
            server_relative_url=str(entity.get("ServerRelativeUrl") or f"{folder}/{name}"),
            size=int(entity.get("Length") or size),
            version_label=entity.get("UIVersionLabel"),
            etag=entity.get("ETag"),
        )

    def _upload_chunked(
        self,
        folder: str,
        name: str,
        data: bytes,
        chunk_size: int,
        progress: ProgressCallback | None,
    ) -> StoredFileInfo:
        file_url = f"{folder}/{name}"
        created = False
        if not self.file_exists(file_url):
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
                response = self._raw(
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
                    entity = _unwrap(response.json())
            if entity is None:
                # Exactly one chunk larger than chunk_size cannot happen; a start-only session
                # would still need finishing. Finish with an empty last fragment.
                response = self._raw(
                    "POST",
                    f"{target}/finishUpload(uploadID='{upload_id}',fileOffset={offset})",
                    data=b"",
                    headers={"Content-Type": "application/octet-stream"},
                    description=_OP_FINISH_UPLOAD.fill(name=name),
                    write=True,
                    retry=False,
                )
                entity = _unwrap(response.json())
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
