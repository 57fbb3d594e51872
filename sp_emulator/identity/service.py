"""The identity service: bearer tokens, the two token services that issue them, and grants.

SharePoint Online accepts only Entra ID access tokens. The emulator reproduces the two ways our
product obtains one, so that the real `msal` runs unchanged against it:

* the App Service **managed-identity** protocol (`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01
  &resource=…` with `X-IDENTITY-HEADER`), served on the emulator's own HTTP port;
* an **Entra-ID-like OpenID authority** for client credentials with a certificate, served over
  HTTPS (msal refuses http authorities) with a certificate from a CA the emulator generates.

Both issue RS256 JWTs signed with a key generated at start; `authenticate` verifies signature,
issuer, audience and expiry (against the emulator clock, so tests can advance time), and
`authorize` applies per-site grants the way `Sites.Selected` does (none, read, write).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sp_emulator import odata
from sp_emulator.errors import ACCESS_DENIED_TEXT, UNAUTHORIZED, SPError
from sp_emulator.http import Request, Response
from sp_emulator.identity.authority import make_authority_handler
from sp_emulator.identity.certificates import generate_client_certificate, make_tls_material

__all__ = [
    "EMULATOR_TENANT_ID",
    "SHAREPOINT_PRINCIPAL_ID",
    "AuthService",
    "Identity",
    "generate_client_certificate",
]

logger = logging.getLogger(__name__)

#: Tenant id the authority serves (`https://127.0.0.1:PORT/<tenant>`); fixed so that URLs and
#: issuers are stable across restarts with `--data`.
EMULATOR_TENANT_ID = "5d3f4c1a-0e6b-4d7e-9a51-7c2b8e0f1a23"
#: The first-party "Office 365 SharePoint Online" principal; SPO names it in WWW-Authenticate.
SHAREPOINT_PRINCIPAL_ID = "00000003-0000-0ff1-ce00-000000000000"
#: Default app id of the system-assigned managed identity.
DEFAULT_MI_APP_ID = "7e9c0b7a-3f0e-4b61-a7f2-1d6c5a8e4b90"

MI_ROUTE = r"/_emulator/identity/token"
# Real Entra access tokens for apps live 60–90 minutes; msal reports expires_in 3599.
CERT_TOKEN_LIFETIME = 3599
# Managed-identity tokens are long-lived (about 24 h) on App Service.
MI_TOKEN_LIFETIME = 86399
ASSERTION_LEEWAY = 300  # seconds of clock skew tolerated on client assertions, as Entra does


@dataclass(frozen=True)
class Identity:
    """The authenticated caller of a request (`request.identity`)."""

    app_id: str
    tenant: str
    kind: str  # "managed_identity" | "certificate" | "issued"


@dataclass(frozen=True)
class _AuthFailure:
    reason: str  # message placed in the body's error_description / message
    diagnostics: str  # x-ms-diagnostics reason


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_response(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status, out, json.dumps(payload).encode("utf-8"))


@dataclass
class _App:
    client_id: str
    certificates: list[bytes]  # PEM
    grants: dict[str, str]  # site ("*" = every site) -> "read" | "write"


class AuthService:
    """Token issuing, verification and per-site grants (see the module docstring).

    Construct, `bind(base_url)` once the main server knows its port, then `start()` the HTTPS
    authority. `register_routes` adds the managed-identity endpoint to the main router; that
    route must be served without `authenticate` (it is how a client gets its first token).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        site_exists: Callable[[str], bool],
        *,
        tenant_id: str = EMULATOR_TENANT_ID,
        managed_identity_app_id: str = DEFAULT_MI_APP_ID,
        managed_identity_grant: str | None = "write",
    ) -> None:
        self._clock = clock
        self._site_exists = site_exists
        self.tenant_id = tenant_id
        self.managed_identity_app_id = managed_identity_app_id
        self.identity_header = secrets.token_hex(16)
        self._lock = threading.RLock()
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = _b64url(os.urandom(12))
        self._generation = 0  # bumped by expire_tokens(); older tokens count as expired
        self._apps: dict[str, _App] = {}
        self._apps[managed_identity_app_id] = _App(
            managed_identity_app_id,
            [],
            {"*": managed_identity_grant} if managed_identity_grant else {},
        )
        self.base_url = ""
        self.identity_endpoint = ""
        self.authority_url = ""
        self.ca_cert_path = ""
        self._tmpdir: str | None = None
        self._https: ThreadingHTTPServer | None = None
        self._https_thread: threading.Thread | None = None
        #: Counts one request of the HTTPS authority by route name (set by the emulator to its
        #: route stats): the authority is a server of its own, outside the main router, and its
        #: token and discovery calls are part of a client's traffic all the same.
        self.count_request: Callable[[str], None] = lambda _name: None

    # ------------------------------------------------------------------ wiring

    @property
    def issuer(self) -> str:
        # SharePoint accepts v1 app tokens from sts.windows.net; our tokens carry the same shape.
        return f"https://sts.windows.net/{self.tenant_id}/"

    def bind(self, base_url: str) -> None:
        """Tell the service the main server's origin (`http://127.0.0.1:PORT`)."""
        self.base_url = base_url.rstrip("/")
        self.identity_endpoint = self.base_url + MI_ROUTE

    def start(self) -> None:
        """Generate a CA and server certificate and serve the OpenID authority over HTTPS."""
        if self._https is not None:
            return
        self._tmpdir = tempfile.mkdtemp(prefix="sp-emulator-auth-")
        ca_pem, cert_pem, key_pem = make_tls_material()
        self.ca_cert_path = os.path.join(self._tmpdir, "emulator-ca.pem")
        cert_path = os.path.join(self._tmpdir, "authority-cert.pem")
        key_path = os.path.join(self._tmpdir, "authority-key.pem")
        for path, data in (
            (self.ca_cert_path, ca_pem),
            (cert_path, cert_pem + ca_pem),
            (key_path, key_pem),
        ):
            with open(path, "wb") as fh:
                fh.write(data)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_authority_handler(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._https = server
        self.authority_url = f"https://127.0.0.1:{server.server_address[1]}/{self.tenant_id}"
        self._https_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sp-emulator-authority",
            daemon=True,
        )
        self._https_thread.start()
        logger.info("OpenID authority listening at %s", self.authority_url)

    def stop(self) -> None:
        if self._https is not None:
            self._https.shutdown()
            self._https.server_close()
            self._https = None
        if self._https_thread is not None:
            self._https_thread.join(timeout=5)
            self._https_thread = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # ------------------------------------------------------------------ apps and grants

    def register_app(
        self, client_id: str, certificate_pem: bytes, grants: dict[str, str] | None = None
    ) -> None:
        """Register a certificate-based app (adds the certificate if the app exists)."""
        x509.load_pem_x509_certificate(certificate_pem)  # fail early on garbage
        with self._lock:
            app = self._apps.get(client_id)
            if app is None:
                app = self._apps[client_id] = _App(client_id, [], {})
            if certificate_pem not in app.certificates:
                app.certificates.append(certificate_pem)
            for site, right in (grants or {}).items():
                self._set_grant(app, site, right)

    def grant(self, app_id: str, site: str, right: str | None) -> None:
        """Grant `read` or `write` on `site` ("*" = all sites); None removes the grant."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                app = self._apps[app_id] = _App(app_id, [], {})
            self._set_grant(app, site, right)

    @staticmethod
    def _set_grant(app: _App, site: str, right: str | None) -> None:
        if right not in (None, "read", "write"):
            raise ValueError(f"right must be 'read', 'write' or None, not {right!r}")
        if right is None:
            app.grants.pop(site, None)
        else:
            app.grants[site] = right

    def right_of(self, app_id: str, site: str) -> str | None:
        """The effective right of an app on a site: a site grant wins over the "*" grant."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                return None
            if site in app.grants:
                return app.grants[site]
            return app.grants.get("*")

    # ------------------------------------------------------------------ tokens

    def issue_token(
        self,
        app_id: str | None = None,
        lifetime: int = 3600,
        audience: str | None = None,
        *,
        kind: str = "issued",
    ) -> str:
        """A signed bearer token for `app_id` (default: the managed identity)."""
        app_id = app_id or self.managed_identity_app_id
        now = int(self._clock())
        claims = {
            "aud": audience or self.base_url,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "appid": app_id,
            "appidacr": "2",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app_id)),
            "tid": self.tenant_id,
            "roles": ["Sites.Selected"],
            "ver": "1.0",
            "xms_emu_gen": self._generation,
            "xms_emu_kind": kind,
        }
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm="RS256",
            headers={"kid": self._key_id, "x5t": self._key_id},
        )

    def expire_tokens(self) -> None:
        """Every token issued so far counts as expired from now on."""
        with self._lock:
            self._generation += 1

    def _audiences(self, request: Request | None) -> set[str]:
        out = {SHAREPOINT_PRINCIPAL_ID}
        for origin in {self.base_url, request.base_url if request else ""}:
            if origin:
                out |= {origin, origin + "/", origin + "/.default"}
        return out

    def _verify(self, token: str, request: Request | None) -> Identity | _AuthFailure:
        try:
            claims = jwt.decode(
                token,
                self._signing_key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            return _AuthFailure("Invalid issuer or signature.", "Token contains invalid signature.")
        except jwt.PyJWTError:
            return _AuthFailure(
                "Invalid JWT token. The token is malformed.", "Malformed JWT token."
            )
        if claims.get("iss") != self.issuer:
            return _AuthFailure("Invalid issuer or signature.", "Token contains invalid issuer.")
        if claims.get("aud") not in self._audiences(request):
            return _AuthFailure("Invalid audience Uri.", "Invalid audience Uri.")
        now = self._clock()
        exp = claims.get("exp")
        if (
            not isinstance(exp, (int, float))
            or exp <= now
            or claims.get("xms_emu_gen") != self._generation
        ):
            return _AuthFailure("Invalid JWT token. The token is expired.", "The token is expired.")
        nbf = claims.get("nbf", 0)
        if isinstance(nbf, (int, float)) and nbf > now + ASSERTION_LEEWAY:
            return _AuthFailure(
                "Invalid JWT token. The token is not yet valid.", "The token is not yet valid."
            )
        return Identity(
            str(claims.get("appid", "")),
            str(claims.get("tid", "")),
            str(claims.get("xms_emu_kind", "")),
        )

    # ------------------------------------------------------------------ request checks

    def _challenge_headers(self) -> dict[str, str]:
        # SPO's bearer challenge: realm is the tenant id, client_id the SharePoint principal.
        return {
            "WWW-Authenticate": (
                f'Bearer realm="{self.tenant_id}",client_id="{SHAREPOINT_PRINCIPAL_ID}",'
                f'trusted_issuers="00000001-0000-0000-c000-000000000000@*,https://sts.windows.net/*/",'
                f'authorization_uri="{self.authority_url or "https://login.windows.net/common"}/oauth2/authorize"'
            ),
        }

    def authenticate(self, request: Request) -> Response | None:
        """Check the bearer token; on success set `request.identity` and return None."""
        header = (request.header("authorization") or "").strip()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header or scheme.lower() != "bearer" or not token:
            # No usable credentials (also office365's `None abc` without token_type): SPO answers with its access-denied body.
            return _sp_error(
                request, 401, UNAUTHORIZED, ACCESS_DENIED_TEXT, self._challenge_headers()
            )
        result = self._verify(token, request)
        if isinstance(result, _AuthFailure):
            headers = self._challenge_headers()
            headers["x-ms-diagnostics"] = (
                f'3000006;reason="{result.diagnostics}";category="invalid_client"'
            )
            return _sp_error(
                request,
                401,
                UNAUTHORIZED,
                result.reason,
                headers,
                error_description=result.reason,
            )
        request.identity = result
        return None

    def authorize(self, request: Request, *, write: bool) -> Response | None:
        """403 unless the caller's app holds a grant on the site (write for writes)."""
        identity = request.identity
        if not isinstance(identity, Identity):
            return _sp_error(
                request, 401, UNAUTHORIZED, ACCESS_DENIED_TEXT, self._challenge_headers()
            )
        if not self._site_exists(request.site):
            return None  # the router answers 404 for a site that does not exist
        right = self.right_of(identity.app_id, request.site)
        if right is None or (write and right != "write"):
            return _sp_error(request, 403, UNAUTHORIZED, ACCESS_DENIED_TEXT)
        return None

    # ------------------------------------------------------------------ managed identity

    def _resource_ok(self, resource: str, request: Request | None) -> str | None:
        """The normalised resource (token audience) when it names this SharePoint, else None."""
        value = resource.strip()
        if value.endswith("/.default"):
            value = value[: -len("/.default")]
        value = value.rstrip("/")
        if value == SHAREPOINT_PRINCIPAL_ID:
            return value
        if value in {self.base_url, request.base_url if request else ""} and value:
            return value
        return None

    def managed_identity_token(self, request: Request, _match: Any) -> Response:
        # App Service answers problems with {"statusCode", "message", "correlationId"}; msal
        # turns a body without access_token into an error dict built from those two fields.
        correlation = str(uuid.uuid4())

        def fail(status: int, message: str) -> Response:
            return _json_response(
                status, {"statusCode": status, "message": message, "correlationId": correlation}
            )

        presented = request.header("x-identity-header")
        if presented is None:
            return fail(400, "The request is missing the required X-IDENTITY-HEADER header.")
        if not secrets.compare_digest(presented, self.identity_header):
            return fail(401, "The X-IDENTITY-HEADER value is not valid.")
        if request.query.get("api-version") != "2019-08-01":
            return fail(
                400, "The api-version parameter is missing or not supported; use 2019-08-01."
            )
        resource = request.query.get("resource", "")
        if not resource:
            return fail(400, "Required query parameter 'resource' is missing.")
        for key in ("client_id", "mi_res_id", "object_id", "principal_id"):
            if request.query.get(key) and request.query[key] != self.managed_identity_app_id:
                return fail(400, "Unable to load the proper Managed Identity.")
        audience = self._resource_ok(resource, request)
        if audience is None:
            return fail(
                400,
                f"AADSTS500011: The resource principal named {resource} was not found in the "
                f"tenant named {self.tenant_id}.",
            )
        now = int(self._clock())
        token = self.issue_token(
            self.managed_identity_app_id, MI_TOKEN_LIFETIME, audience, kind="managed_identity"
        )
        logger.debug("managed-identity token issued for app %s", self.managed_identity_app_id)
        return _json_response(
            200,
            {
                "access_token": token,
                "expires_on": str(now + MI_TOKEN_LIFETIME),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": self.managed_identity_app_id,
            },
        )

    # ------------------------------------------------------------------ OpenID authority

    def _authority_origin(self) -> str:
        parts = urlsplit(self.authority_url)
        return f"{parts.scheme}://{parts.netloc}"

    def openid_configuration(self, *, v2: bool) -> dict[str, Any]:
        base = f"{self._authority_origin()}/{self.tenant_id}"
        return {
            # msal compares `issuer` with the authority for oidc_authority= (no /v2.0).
            "issuer": f"{base}/v2.0" if v2 else base,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self._signing_key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {
            "keys": [
                {"kty": "RSA", "use": "sig", "kid": self._key_id, "n": _b64url(n), "e": _b64url(e)}
            ]
        }

    def token_request(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Client-credentials grant with a certificate assertion; errors shaped like Entra's."""
        trace = str(uuid.uuid4())

        def fail(status: int, error: str, code: int, text: str) -> tuple[int, dict[str, Any]]:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            return status, {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} Timestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": trace,
            }

        if form.get("grant_type") != "client_credentials":
            return fail(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        with self._lock:
            app = self._apps.get(client_id)
            certificates = list(app.certificates) if app else []
        if app is None or client_id == self.managed_identity_app_id:
            return fail(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
            )
        if form.get("client_secret"):
            # SharePoint app-only access requires certificates; the emulator registers none.
            return fail(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"
                + client_id
                + "'.",
            )
        assertion = form.get("client_assertion", "")
        if (
            not assertion
            or form.get("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return fail(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        problem = self._check_assertion(assertion, client_id, certificates)
        if problem is not None:
            return fail(401, "invalid_client", problem[0], problem[1])
        scopes = form.get("scope", "").split()
        defaults = [s for s in scopes if s.endswith("/.default")]
        if len(defaults) != 1:
            return fail(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        audience = self._resource_ok(defaults[0], None)
        if audience is None:
            return fail(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {defaults[0][: -len('/.default')]} was not found in the tenant named {self.tenant_id}.",
            )
        token = self.issue_token(client_id, CERT_TOKEN_LIFETIME, audience, kind="certificate")
        logger.debug("client-credentials token issued for app %s", client_id)
        return 200, {
            "token_type": "Bearer",
            "expires_in": CERT_TOKEN_LIFETIME,
            "ext_expires_in": CERT_TOKEN_LIFETIME,
            "access_token": token,
        }

    def _check_assertion(
        self, assertion: str, client_id: str, certificates: list[bytes]
    ) -> tuple[int, str] | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return 50027, "JWT token is invalid or malformed."
        loaded = [x509.load_pem_x509_certificate(pem) for pem in certificates]
        chosen: x509.Certificate | None = None
        # msal keeps base64 padding on x5t / x5t#S256; RFC 7515 drops it: accept both.
        x5t = str(header.get("x5t") or "").rstrip("=")
        x5t256 = str(header.get("x5t#S256") or "").rstrip("=")
        x5c = header.get("x5c")
        for cert in loaded:
            der = cert.public_bytes(serialization.Encoding.DER)
            sha1 = _b64url(hashlib.sha1(der).digest())  # x5t is SHA-1 by definition
            if (x5t256 and x5t256 == _b64url(hashlib.sha256(der).digest())) or (
                x5t and x5t == sha1
            ):
                chosen = cert
                break
            if isinstance(x5c, list) and x5c and x5c[0] == base64.b64encode(der).decode("ascii"):
                chosen = cert
                break
        if chosen is None:
            return 700027, (
                "The certificate with identifier used to sign the client assertion is not "
                f"registered on application. [Reason - The key was not found., Thumbprint of key "
                f"used by client: '{header.get('x5t', header.get('x5t#S256', ''))}']"
            )
        if header.get("alg") not in ("RS256", "PS256"):
            return 700027, "Client assertion contains an invalid signature algorithm."
        token_endpoints = {
            f"{self._authority_origin()}/{self.tenant_id}/oauth2/v2.0/token",
            f"{self._authority_origin()}/{self.tenant_id}/oauth2/token",
        }
        try:
            claims = jwt.decode(
                assertion,
                chosen.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
                leeway=ASSERTION_LEEWAY,  # msal stamps assertions with the real clock
            )
        except jwt.ExpiredSignatureError:
            return 700024, "Client assertion is not within its valid time range."
        except jwt.InvalidSignatureError:
            return 700027, "Client assertion failed signature validation."
        except jwt.PyJWTError:
            return 700027, "Client assertion contains an invalid signature or malformed claims."
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(a in token_endpoints for a in auds):
            return (
                700212,
                "No matching federated identity record found for presented assertion audience.",
            )
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return 700023, "Client assertion audience claim does not match Realm issuer."
        return None

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state for `--data` (signing key included: old tokens stay valid)."""
        with self._lock:
            return {
                "signing_key_pem": self._signing_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode("ascii"),
                "key_id": self._key_id,
                "generation": self._generation,
                "identity_header": self.identity_header,
                "managed_identity_app_id": self.managed_identity_app_id,
                "apps": {
                    app.client_id: {
                        "certificates": [pem.decode("ascii") for pem in app.certificates],
                        "grants": dict(app.grants),
                    }
                    for app in self._apps.values()
                },
            }

    def load_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            key = serialization.load_pem_private_key(state["signing_key_pem"].encode("ascii"), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("signing key in state is not an RSA key")
            self._signing_key = key
            self._key_id = state.get("key_id", self._key_id)
            self._generation = int(state.get("generation", 0))
            self.identity_header = state.get("identity_header", self.identity_header)
            self.managed_identity_app_id = state.get(
                "managed_identity_app_id", self.managed_identity_app_id
            )
            self._apps = {
                cid: _App(
                    cid,
                    [pem.encode("ascii") for pem in data.get("certificates", [])],
                    dict(data.get("grants", {})),
                )
                for cid, data in state.get("apps", {}).items()
            }
            self._apps.setdefault(
                self.managed_identity_app_id, _App(self.managed_identity_app_id, [], {"*": "write"})
            )


# ---------------------------------------------------------------------- helpers


def _sp_error(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    error_description: str | None = None,
) -> Response:
    """SharePoint's error envelope in the format the client asked for.

    For token failures SPO sends `{"error_description": …}`; the emulator adds it next to the
    usual `error` object so both PnP-style clients and office365's classifier find their key.
    """
    fmt = request.odata_format
    if fmt == "atom":
        return odata.error(request, SPError(status, code, message, headers))
    error = {"code": code, "message": {"lang": "en-US", "value": message}}
    body: dict[str, Any] = {"error": error} if fmt == "verbose" else {"odata.error": error}
    if error_description is not None:
        body["error_description"] = error_description
    content_type = (
        "application/json;odata=verbose;charset=utf-8"
        if fmt == "verbose"
        else f"application/json;odata={fmt};streaming=true;charset=utf-8"
    )
    out = {"Content-Type": content_type}
    out.update(headers or {})
    return Response(status, out, json.dumps(body).encode("utf-8"))
