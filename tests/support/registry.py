"""A real registry for tests: Debian's `docker-registry` on 127.0.0.1, optionally with token auth.

`start_registry(tmp)` writes a config and storage dir under `tmp`, starts
/usr/bin/docker-registry on a free port, waits for /v2/ to answer and returns a
`RunningRegistry`; `stop()` ends that process by its PID. With `token_auth=True` it
also starts `TokenIssuer`, a tiny HTTP token service that signs RS256 JWTs with a
throw-away key (made with the openssl command line) whose self-signed certificate is
the registry's root bundle. It grants what was asked to the one user it knows and
nothing to anyone else.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from stackd.netbridge import hostports
from support.freeaddrs import free_port

REGISTRY_BIN = Path("/usr/bin/docker-registry")
TOKEN_USER = "alice"
TOKEN_PASSWORD = "wonderland"


def registry_available() -> bool:
    return REGISTRY_BIN.exists()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Issues registry tokens for TOKEN_USER (basic auth) and refuses everyone else."""

    def __init__(self, workdir: Path, service: str) -> None:
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        self.service = service
        self.issuer = "stackd-test-issuer"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=stackd-test-token", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict[str, list[str]]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                issuer.requests.append(query)
                auth = self.headers.get("Authorization", "")
                want = "Basic " + base64.b64encode(
                    f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode()).decode()
                if auth != want:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": issuer.sign(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, scopes: list[str]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": TOKEN_USER, "aud": self.service, "exp": now + 600,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class RunningRegistry:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    issuer: TokenIssuer | None = None
    log: Path = field(default_factory=Path)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def storage_blob(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return (self.workdir / "storage/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd
                / "data")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.issuer is not None:
            self.issuer.stop()


def _bcrypt(password: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt does bcrypt, which is all docker-registry's htpasswd reads

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


def start_registry(workdir: Path, *, token_auth: bool = False, basic_auth: bool = False
                   ) -> RunningRegistry:
    """With `basic_auth`, TOKEN_USER/TOKEN_PASSWORD may log in with HTTP Basic (htpasswd).

    The port is free when chosen; if another process (another test run) takes it
    before the registry binds, the registry exits and we start it again on another."""
    for _ in range(3):
        reg = _start_registry(workdir, token_auth=token_auth, basic_auth=basic_auth)
        if reg is not None:
            return reg
    raise RuntimeError("docker-registry found its port taken three times in a row")


def _listens_on(pid: int, port: int) -> bool:
    found = [lis for lis in hostports.listeners("tcp") if lis.port == port]
    return bool(found) and all(hostports.holder(lis.inode).startswith(f"pid {pid} ")
                               for lis in found)


def _start_registry(workdir: Path, *, token_auth: bool, basic_auth: bool
                    ) -> RunningRegistry | None:
    """The running registry, or None if its port was taken."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    issuer = TokenIssuer(workdir, service=f"127.0.0.1:{port}") if token_auth else None
    auth = ""
    if basic_auth:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(f"{TOKEN_USER}:{_bcrypt(TOKEN_PASSWORD)}\n")
        auth = f"auth:\n  htpasswd:\n    realm: stackd-test\n    path: {htpasswd}\n"
    if issuer is not None:
        auth = (f"auth:\n  token:\n    realm: {issuer.realm}\n    service: 127.0.0.1:{port}\n"
                f"    issuer: {issuer.issuer}\n    rootcertbundle: {issuer.cert}\n")
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: stackd-tests\n{auth}")
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    reg = RunningRegistry(port, workdir, proc, issuer, log)
    deadline = time.monotonic() + 15
    while True:
        answered = False
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            answered = True
        except urllib.error.HTTPError as exc:
            answered = exc.code == 401
        except OSError:
            pass
        # Whoever answered must be our registry, not a process that took the port.
        if answered and _listens_on(proc.pid, port):
            return reg
        if proc.poll() is not None or time.monotonic() > deadline:
            reg.stop()
            text = log.read_text()
            if "address already in use" in text:
                return None
            raise RuntimeError(f"docker-registry did not start: {text[-2000:]}")
        time.sleep(0.05)


def skopeo(*args: str) -> str:
    """Run Debian's skopeo (no signature policy needed for tests); its stdout."""
    done = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {done.stderr}")
    return done.stdout
