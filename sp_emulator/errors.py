"""Every SharePoint error the emulator answers with, named (moto's `exceptions.py`).

SharePoint's REST error body is `{"error": {"code": "<hresult>, <exception type>", "message":
{"lang": "en-US", "value": "…"}}}` (`odata.error` in JSON light). The `code` strings below are
the only place an HRESULT appears in the emulator: handlers and the backend raise the named
constructors, so a test or a reader can find every error the emulator can produce in one file.

Sources for the codes and texts are listed in the emulator README ("Formats and errors").
"""

from __future__ import annotations

from collections.abc import Mapping


class SPError(Exception):
    """A SharePoint error: HTTP status plus the `code` ("<hresult>, <type>") and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# ---- codes: "<hresult>, <exception type>" as SharePoint Online writes them -------------------

INVALID_CLIENT_QUERY = "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
CLIENT_SERVICE = "-1, Microsoft.SharePoint.Client.ClientServiceException"
RESOURCE_NOT_FOUND = "-1, Microsoft.SharePoint.Client.ResourceNotFoundException"
SP_EXCEPTION_PLAIN = "-1, Microsoft.SharePoint.SPException"
ARGUMENT_PLAIN = "-1, System.ArgumentException"
INVALID_OPERATION_PLAIN = "-1, System.InvalidOperationException"
NOT_SUPPORTED_PLAIN = "-1, System.NotSupportedException"
# E_INVALIDARG: argument errors of the object model (items, files, uploads).
ARGUMENT = "-2147024809, System.ArgumentException"
# 0x80070002: a file, folder or site that does not exist.
FILE_NOT_FOUND = "-2147024894, System.IO.FileNotFoundException"
# 0x80070005: access denied.
UNAUTHORIZED = "-2147024891, System.UnauthorizedAccessException"
# 0x80070024: list view threshold; the same HRESULT is used for request throttling.
QUERY_THROTTLED = "-2147024860, Microsoft.SharePoint.SPQueryThrottledException"
REQUEST_THROTTLED = "-2147024860, Microsoft.SharePoint.SPRequestThrottledException"
SERVER_TOO_BUSY = "-2147024860, Microsoft.SharePoint.SPServerTooBusyException"
# 0x80070093: lookup column threshold.
LOOKUP_THROTTLED = "-2147024749, Microsoft.SharePoint.SPQueryThrottledException"
# 0x80131500: generic SPException (missing column, missing user).
SP_EXCEPTION = "-2146232832, Microsoft.SharePoint.SPException"
# 0x80131502: ArgumentOutOfRangeException (a change token outside the log).
ARGUMENT_OUT_OF_RANGE = "-2146233086, System.ArgumentOutOfRangeException"
# 0x80131509: InvalidOperationException.
INVALID_OPERATION = "-2146233088, System.InvalidOperationException"
# 0x81020012: duplicate list title or field name.
ALREADY_EXISTS = "-2130575342, Microsoft.SharePoint.SPException"
# 0x81020067: a file with that name already exists.
FILE_EXISTS = "-2130575257, Microsoft.SharePoint.SPException"
# 0x8102006D: form digest invalid or expired.
SECURITY_VALIDATION = "-2130575251, Microsoft.SharePoint.SPException"
# 0x810200C6: field value validation (too long).
FIELD_VALIDATION = "-2130575162, Microsoft.SharePoint.SPFieldValidationException"

ACCESS_DENIED_TEXT = (
    "Access denied. You do not have permission to perform this action or access this resource."
)


# ---- constructors -----------------------------------------------------------------------------


def invalid_query(message: str, status: int = 400) -> SPError:
    """400 InvalidClientQueryException: a malformed request, property or query option."""
    return SPError(status, INVALID_CLIENT_QUERY, message)


def argument_error(message: str, status: int = 400) -> SPError:
    """`-1, System.ArgumentException`, e.g. a missing parameter or list."""
    return SPError(status, ARGUMENT_PLAIN, message)


def invalid_argument(message: str, status: int = 400) -> SPError:
    """`-2147024809, System.ArgumentException` (E_INVALIDARG) of the object model."""
    return SPError(status, ARGUMENT, message)


def not_found() -> SPError:
    """404 "File Not Found." for a file, folder or site that does not exist."""
    return SPError(404, FILE_NOT_FOUND, "File Not Found.")


def resource_not_found(segment: str) -> SPError:
    """404 for a URL the REST service does not know."""
    return SPError(
        404,
        RESOURCE_NOT_FOUND,
        f"Cannot find resource for the request {segment}. (If SharePoint Online has this "
        "endpoint, it is not supported by the emulator; see sp_emulator/README.md.)",
    )


def method_not_allowed(method: str) -> SPError:
    return SPError(
        405, INVALID_CLIENT_QUERY, f"The HTTP method '{method}' cannot be used for this resource."
    )


def not_supported(what: str, status: int = 501) -> SPError:
    """An endpoint or option SharePoint has but the emulator does not: never a silent 200.

    SharePoint answers unknown operations with `NotSupportedException`; the message says plainly
    that the gap is the emulator's, so a test failing on it points at the emulator.
    """
    return SPError(status, NOT_SUPPORTED_PLAIN, f"{what} is not supported by the emulator.")


def internal_error() -> SPError:
    return SPError(500, INVALID_OPERATION, "Internal error in the SharePoint emulator.")


def invalid_operation(message: str, status: int = 400) -> SPError:
    return SPError(status, INVALID_OPERATION_PLAIN, message)


def access_denied(status: int = 403, message: str = ACCESS_DENIED_TEXT) -> SPError:
    return SPError(status, UNAUTHORIZED, message)


def security_validation() -> SPError:
    """403 for a form digest that is unknown or expired."""
    return SPError(
        403,
        SECURITY_VALIDATION,
        "The security validation for this page is invalid and might have timed out. "
        "Please use your web browser's Back button to try your operation again.",
    )


def throttled_lvt() -> SPError:
    return SPError(
        500,
        QUERY_THROTTLED,
        "The attempted operation is prohibited because it exceeds the list view threshold.",
    )


def throttled_lookups() -> SPError:
    return SPError(
        500,
        LOOKUP_THROTTLED,
        "The query cannot be completed because the number of lookup columns it contains exceeds "
        "the lookup column threshold enforced by the administrator.",
    )


def change_token_error() -> SPError:
    return SPError(
        500,
        ARGUMENT_OUT_OF_RANGE,
        "Specified argument was out of the range of valid values.\r\nParameter name: changeToken",
    )


def item_not_found() -> SPError:
    return SPError(404, ARGUMENT, "Item does not exist. It may have been deleted by another user.")


def column_not_found(name: str) -> SPError:
    return SPError(
        400,
        SP_EXCEPTION,
        f"Column '{name}' does not exist. It may have been deleted by another user.",
    )


def user_not_found(status: int = 404) -> SPError:
    return SPError(status, SP_EXCEPTION, "User cannot be found.")


def group_not_found() -> SPError:
    return SPError(404, SP_EXCEPTION, "Group cannot be found.")


def user_not_unique() -> SPError:
    return SPError(400, SP_EXCEPTION, "The user does not exist or is not unique.")


def expand_required(name: str) -> SPError:
    return SPError(
        400,
        SP_EXCEPTION_PLAIN,
        f"The query to field '{name}' is not valid. The $select query string must specify the "
        f"target fields and the $expand query string must contains {name}.",
    )


def list_exists(message: str) -> SPError:
    return SPError(500, ALREADY_EXISTS, message)


def duplicate_field(name: str) -> SPError:
    return SPError(400, ALREADY_EXISTS, f'A duplicate field name "{name}" was found.')


def read_only_field() -> SPError:
    return SPError(400, UNAUTHORIZED, "You cannot delete a read-only field.")


def value_too_long() -> SPError:
    return SPError(400, FIELD_VALIDATION, "The value for the field is too long.")


def etag_mismatch(sent: str, current: str) -> SPError:
    """412 for a stale `IF-MATCH` on an item."""
    return SPError(
        412,
        CLIENT_SERVICE,
        f"The request ETag value '{sent}' does not match the object's ETag value '{current}'.",
    )


def file_etag_mismatch(sent: str, current: str) -> SPError:
    """412 for a stale `IF-MATCH` on a file (SharePoint uses E_INVALIDARG there)."""
    return SPError(
        412,
        ARGUMENT,
        f"The request ETag value '{sent}' does not match the object's ETag value '{current}'.",
    )


def file_conflict(message: str) -> SPError:
    """400 for a file or folder name that is taken (or a root folder that cannot go)."""
    return SPError(400, FILE_EXISTS, message)


def throttling_code(status: int) -> str:
    """The code of an injected 429 (request throttled) or 503 (server too busy)."""
    return SERVER_TOO_BUSY if status == 503 else REQUEST_THROTTLED
