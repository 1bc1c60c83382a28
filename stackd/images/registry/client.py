"""An async client of one OCI distribution registry (httpx, HTTP/1.1).

It speaks the distribution spec's endpoints under /v2/ and nothing higher-level:
pulling and pushing whole images is `stackd.images.transfer`'s job. Authentication
follows the challenge the registry sends: a 401 with `WWW-Authenticate: Bearer …`
makes us fetch a token for the scope from the realm (with basic credentials if we
have some) and retry; `Basic` sends the saved credentials. Tokens are cached per scope.
"""

from __future__ import annotations

import base64
import functools
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx

from stackd.errors import reason
from stackd.images.errors import (
    BlobNotFoundError,
    ImageNotFoundError,
    RegistryAuthError,
    RegistryError,
)
from stackd.images.mediatypes import ACCEPT
from stackd.images.reference import Reference
from stackd.images.registry import credentials
from stackd.images.registry.auth import parse_challenge, scope_for

DOCKER_HUB_API = "registry-1.docker.io"
USER_AGENT = "stackd/0.1"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store, loaded once per process: loading it took 0.1-0.2 s, paid by every
    pull and push when each client made its own (a changed CA bundle is read at the
    daemon's next start, as Docker's daemon does)."""
    return httpx.create_ssl_context()


# httpcore reads a response 64 KiB at a time, and each read passes through h11,
# httpcore and httpx in Python: for a 100 MB pull that was a quarter of its CPU
# (0.66 s -> 0.47 s with 1 MiB; skopeo's whole copy is 0.47 s). A read takes what the
# socket holds, so a small response still costs one read. It is httpcore's class
# attribute (no per-client knob), so every HTTP/1.1 client in the process gets it.
HTTP_READ_SIZE = 1 << 20
if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < HTTP_READ_SIZE:
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = HTTP_READ_SIZE


def api_host(domain: str) -> str:
    return DOCKER_HUB_API if domain == "docker.io" else domain


# What a registry may send that is read whole into memory: a manifest (Docker's limit),
# an image's config, an error or a token answer. More is refused, not buffered: a
# hostile or broken registry must not make the daemon hold gigabytes.
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 16 << 20
MAX_SMALL = 1 << 20


async def read_capped(resp: httpx.Response, limit: int, what: str, domain: str) -> bytes:
    """A streamed response's body, refused once it is longer than `limit`."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(what, domain, limit)
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(what, domain, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, domain: str, limit: int) -> RegistryError:
    return RegistryError(f"registry {domain}: {what} is larger than {limit >> 20} MiB",
                         hint="no registry sends that much; check its address and the "
                              "reference")


class RegistryClient:
    """Talks to the registries named by references; one per pull/push session."""

    def __init__(self, http: httpx.AsyncClient | None = None, *,
                 credentials_override: credentials.Credential | None = None) -> None:
        """`credentials_override`: use these instead of the saved ones (`stackd login`)."""
        self._override = credentials_override
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            http2=False, follow_redirects=True, headers={"User-Agent": USER_AGENT},
            verify=tls_context(),
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self._tokens: dict[tuple[str, str], str] = {}  # (domain, scope) → Authorization
        self._basic: dict[str, str] = {}  # domain → Authorization for Basic registries

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing -----------------------------------------------------------------------
    def base(self, domain: str) -> str:
        scheme = "http" if credentials.uses_plain_http(domain) else "https"
        return f"{scheme}://{api_host(domain)}"

    def url(self, ref: Reference, tail: str) -> str:
        return f"{self.base(ref.domain)}/v2/{ref.path}/{tail}"

    def _auth_header(self, domain: str, scope: str) -> str | None:
        return self._tokens.get((domain, scope)) or self._basic.get(domain)

    async def request(self, method: str, ref: Reference, url: str, *, actions: str = "pull",
                      extra_scopes: tuple[str, ...] = (), stream: bool = False,
                      content: Callable[[], Any] | None = None, **kw: Any) -> httpx.Response:
        """Send, answering one auth challenge. `content` is a factory so a retry can resend."""
        scope = " ".join((scope_for(ref.path, actions), *extra_scopes))
        for attempt in range(2):
            headers = dict(kw.pop("headers", None) or {})
            kw["headers"] = headers
            auth = self._auth_header(ref.domain, scope)
            if auth:
                headers["Authorization"] = auth
            try:
                req = self.http.build_request(method, url, content=content() if content else None,
                                              **kw)
                resp = await self.http.send(req, stream=stream)
            except httpx.HTTPError as exc:
                # Named: a stack's first pull on a host with no way out is often the
                # first thing a new user meets, and which of its images failed matters.
                where = ("" if "push" in actions else
                         "; without a registry, `stackd image import` or `stackd build` "
                         "puts an image in the store")
                raise RegistryError(
                    f"{ref.familiar()}: registry {ref.domain} could not be reached: "
                    f"{reason(exc)}",
                    hint="check the address, that it is running, and (for plain http) that "
                         f"it is listed in STACKD_INSECURE_REGISTRIES{where}",
                ) from exc
            if resp.status_code != 401 or attempt == 1:
                if resp.status_code == 401:
                    await resp.aclose()
                    raise RegistryAuthError(
                        f"registry {ref.domain} refused access to {ref.path} ({actions})",
                        hint=f"run `stackd login {ref.domain}` with an account that may "
                             f"{actions} it",
                    )
                return resp
            challenge = resp.headers.get("www-authenticate", "")
            await resp.aclose()
            await self._answer(ref.domain, scope, challenge)
        raise AssertionError("unreachable")

    async def _answer(self, domain: str, scope: str, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        cred = self._override or credentials.lookup(domain)
        if scheme == "basic":
            if cred is None:
                raise RegistryAuthError(
                    f"registry {domain} needs a login",
                    hint=f"run `stackd login {domain}`",
                )
            pair = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
            self._basic[domain] = f"Basic {pair}"
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthError(
                f"registry {domain} asks for unsupported authentication '{challenge}'",
                hint="stackd speaks Basic and Bearer token auth",
            )
        query: list[tuple[str, str | int | float | bool | None]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for s in scope.split(" "):
            query.append(("scope", s))
        auth = httpx.BasicAuth(cred.username, cred.password) if cred else None
        if cred:
            query.append(("account", cred.username))
        try:
            resp = await self.http.send(self.http.build_request(
                "GET", params["realm"], params=query), auth=auth, stream=True)
        except httpx.HTTPError as exc:
            raise RegistryAuthError(
                f"token service {params['realm']} of {domain} could not be reached: "
                f"{reason(exc)}",
                hint="check the network; the registry's auth service must be reachable",
            ) from exc
        try:
            if resp.status_code in (401, 403):
                raise RegistryAuthError(
                    f"token service of {domain} refused "
                    f"{'the credentials' if cred else 'anonymous access'}",
                    hint=f"run `stackd login {domain}`",
                )
            if resp.status_code != 200:
                raise RegistryAuthError(f"token service of {domain} answered "
                                        f"{resp.status_code}", hint="try again later")
            raw = await read_capped(resp, MAX_SMALL, "the token answer", domain)
        finally:
            await resp.aclose()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # (the decoder recurses per level)
            body = None
        token = (body.get("token") or body.get("access_token")) \
            if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(f"token service of {domain} sent no token",
                                    hint="the registry's auth service is misconfigured")
        self._tokens[(domain, scope)] = f"Bearer {token}"

    def _fail(self, ref: Reference, resp: httpx.Response, what: str,
              body: bytes | None = None) -> RegistryError:
        """`body`: a streamed response's, read already (capped); else the response's."""
        detail = ""
        try:
            errs = json.loads(body if body is not None else resp.content).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs)
        except (ValueError, AttributeError, TypeError, RecursionError, httpx.ResponseNotRead):
            pass
        return RegistryError(
            f"registry {ref.domain}: {what} failed with HTTP {resp.status_code}"
            + (f" ({detail})" if detail else ""),
            hint="check the reference and your access rights; retrying may help",
        )

    # -- endpoints ----------------------------------------------------------------------
    async def ping(self, ref: Reference) -> None:
        resp = await self.request("GET", ref, f"{self.base(ref.domain)}/v2/")
        if resp.status_code != 200:
            raise self._fail(ref, resp, "version check")

    async def get_manifest(self, ref: Reference, locator: str) -> tuple[bytes, str, str | None]:
        """(body, media type, Docker-Content-Digest header) of a manifest or index."""
        resp = await self.request("GET", ref, self.url(ref, f"manifests/{locator}"),
                                  headers={"Accept": ACCEPT}, stream=True)
        try:
            if resp.status_code == 404:
                raise ImageNotFoundError(
                    f"image {ref.repository}:{locator} was not found on {ref.domain}"
                    if ":" not in locator else
                    f"image {ref.repository}@{locator} was not found on {ref.domain}",
                    hint="check the name and tag",
                )
            if resp.status_code != 200:
                body = await read_capped(resp, MAX_SMALL, "an error answer", ref.domain)
                raise self._fail(ref, resp, f"manifest {locator}", body)
            body = await read_capped(resp, MAX_MANIFEST, f"the manifest {locator}", ref.domain)
        finally:
            await resp.aclose()
        mt = resp.headers.get("content-type", "").split(";")[0].strip()
        return body, mt, resp.headers.get("docker-content-digest")

    @asynccontextmanager
    async def blob(self, ref: Reference, digest: str) -> AsyncIterator[httpx.Response]:
        resp = await self.request("GET", ref, self.url(ref, f"blobs/{digest}"), stream=True)
        try:
            if resp.status_code == 404:
                raise BlobNotFoundError(f"blob {digest} of {ref.repository} is not on the registry",
                                        hint="the image on the registry is incomplete")
            if resp.status_code != 200:
                body = await read_capped(resp, MAX_SMALL, "an error answer", ref.domain)
                raise self._fail(ref, resp, f"blob {digest}", body)
            yield resp
        finally:
            await resp.aclose()

    async def has_blob(self, ref: Reference, digest: str) -> bool:
        resp = await self.request("HEAD", ref, self.url(ref, f"blobs/{digest}"),
                                  actions="pull,push")
        return resp.status_code == 200

    async def mount_blob(self, ref: Reference, digest: str, source_path: str) -> str | None:
        """Cross-repository mount. None when mounted, else the upload URL the registry opened."""
        url = self.url(ref, "blobs/uploads/")
        resp = await self.request("POST", ref, url, actions="pull,push",
                                  extra_scopes=(scope_for(source_path, "pull"),),
                                  params={"mount": digest, "from": source_path})  # no query yet
        if resp.status_code == 201:
            return None
        if resp.status_code == 202:
            return urljoin(url, resp.headers["location"])
        raise self._fail(ref, resp, f"mount of {digest}")

    async def start_upload(self, ref: Reference) -> str:
        url = self.url(ref, "blobs/uploads/")
        resp = await self.request("POST", ref, url, actions="pull,push")
        if resp.status_code != 202:
            raise self._fail(ref, resp, "upload start")
        return urljoin(url, resp.headers["location"])

    async def upload_monolithic(self, ref: Reference, location: str, digest: str,
                                body: Callable[[], Any], size: int) -> None:
        url = str(httpx.URL(location).copy_merge_params({"digest": digest}))
        resp = await self.request("PUT", ref, url, actions="pull,push", content=body,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
        if resp.status_code != 201:
            raise self._fail(ref, resp, f"upload of {digest}")

    async def upload_chunk(self, ref: Reference, location: str, data: bytes, offset: int) -> str:
        resp = await self.request(
            "PATCH", ref, location, actions="pull,push", content=lambda: data,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Range": f"{offset}-{offset + len(data) - 1}",
                     "Content-Length": str(len(data))})
        if resp.status_code != 202:
            raise self._fail(ref, resp, "chunk upload")
        return urljoin(location, resp.headers["location"])

    async def finish_upload(self, ref: Reference, location: str, digest: str) -> None:
        url = str(httpx.URL(location).copy_merge_params({"digest": digest}))
        resp = await self.request("PUT", ref, url, actions="pull,push", content=lambda: b"",
                                  headers={"Content-Length": "0"})
        if resp.status_code != 201:
            raise self._fail(ref, resp, f"upload of {digest}")

    async def put_manifest(self, ref: Reference, locator: str, body: bytes, media_type: str
                           ) -> str | None:
        resp = await self.request("PUT", ref, self.url(ref, f"manifests/{locator}"),
                                  actions="pull,push", content=lambda: body,
                                  headers={"Content-Type": media_type})
        if resp.status_code != 201:
            raise self._fail(ref, resp, f"manifest upload for {ref}")
        digest: str | None = resp.headers.get("docker-content-digest")
        return digest
