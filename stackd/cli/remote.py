"""`--host` / STACKD_HOST: which daemon the CLI talks to, and the identity it shows it.

Unset, or `unix:///PATH`: this host's daemon on its socket (started on demand).
`tcp://HOST:PORT`: a cluster member's API (`node join --listen`), over TLS, both ends
proving a certificate of the cluster's CA. The CLI's identity is `--tlscacert`,
`--tlscert`, `--tlskey` (or STACKD_TLSCACERT, STACKD_TLSCERT, STACKD_TLSKEY), else this
host's own node identity in its state root (a member's, root-only), else none: then
it says how to get one (`stackd node cert`). See docs/cluster.md.

Only verbs that do everything through the API work against another host; the ones
that act on this host directly (exec with a terminal, cp, pause, images, networks…)
are refused there with the verb named, rather than silently acting on this host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from stackd.errors import StackdError, UnavailableError, UsageError

if TYPE_CHECKING:
    import ssl

HOST_ENV = "STACKD_HOST"
CA_ENV, CERT_ENV, KEY_ENV = "STACKD_TLSCACERT", "STACKD_TLSCERT", "STACKD_TLSKEY"

# The verbs that go through the API only (so they work against any node), and those
# that need no daemon at all. Any other verb is refused with --host tcp://.
REMOTE_VERBS = frozenset({
    "up", "create", "down", "ps", "ls", "logs", "exec", "plan", "history", "rollback",
    "resume", "events", "start", "stop", "restart", "kill", "rm", "top", "port", "wait",
    "scale", "stats", "version", "config", "graph", "node"})


class Remote(NamedTuple):  # not a dataclass: `up` imports this, dataclasses cost 8 ms
    url: str
    address: tuple[str, int]


def parse(url: str) -> Remote | str | None:
    """A Remote for tcp://HOST:PORT, the socket path of unix:///PATH, None for ""."""
    if not url:
        return None
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not path.startswith("/"):
            raise UsageError(f"host {url!r} names no absolute socket path",
                             hint="write it as unix:///run/stackd/stackd.sock")
        return path
    if url.startswith("tcp://"):
        from stackd.cluster.config import listen_address

        try:
            return Remote(url, listen_address(url[len("tcp://"):].rstrip("/")))
        except UsageError:
            pass
    raise UsageError(f"host {url!r} is not tcp://HOST:PORT or unix:///PATH",
                     hint="e.g. --host tcp://node2:2377 (a member's `node join --listen`)")


def current() -> Remote | str | None:
    return parse(os.environ.get(HOST_ENV, ""))


def is_remote() -> bool:
    return isinstance(current(), Remote)


def check_verb(verb: str) -> None:
    """Refuse a verb that would act on this host while --host names another."""
    where = current()
    if isinstance(where, Remote) and verb not in REMOTE_VERBS:
        raise UsageError(
            f"`stackd {verb}` acts on this host directly and cannot run against "
            f"{where.url}", hint=f"run it on that node itself (without --host), or use "
                                 f"one of: {', '.join(sorted(REMOTE_VERBS))}")


def tls_context(remote: Remote) -> ssl.SSLContext:
    """The client's TLS context for `remote`: the CA it trusts, the certificate it shows."""
    import ssl

    from stackd.cluster.pki import node_identity
    from stackd.roots import Roots

    own = node_identity(Roots.from_env().state)
    given = (os.environ.get(CA_ENV), os.environ.get(CERT_ENV), os.environ.get(KEY_ENV))
    ca, cert, key = (Path(g) if g else d for g, d in zip(given, (own.ca, own.cert, own.key),
                                                          strict=True))
    for path, flag in ((ca, "--tlscacert"), (cert, "--tlscert"), (key, "--tlskey")):
        try:
            path.stat()
        except PermissionError:
            raise UsageError(f"permission denied on {path} (the TLS identity for "
                             f"{remote.url})", hint="run stackd as root (sudo stackd …)"
                             ) from None
        except OSError:
            raise UsageError(
                f"no TLS identity to reach {remote.url}: {path} does not exist",
                hint=f"pass {flag} (with the others of --tlscacert/--tlscert/--tlskey; "
                     "`stackd node cert --out DIR` on a member writes them), or run on "
                     "a member of the cluster") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Any member may answer for any other: they hold the same CA and the same power
    # (etcd), so the chain to the cluster's CA is the check, not the name dialled.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, ValueError) as e:
        raise UsageError(f"the TLS identity {cert}, {key}, {ca} cannot be used ({e})",
                         hint="they must be PEM files: a certificate, its key, the CA "
                              "(`stackd node cert --out DIR` writes them)") from None
    return context


def unavailable(exc: BaseException, remote: Remote) -> StackdError:
    """What a failed request to `remote` means, named for the user."""
    import ssl

    from stackd.cli.unixhttp import NoAnswer

    if isinstance(exc, ssl.SSLCertVerificationError):
        return UnavailableError(
            f"the daemon at {remote.url} has a certificate this client's CA did not issue "
            f"(unknown CA: {exc.verify_message})",
            hint="pass --tlscacert with the CA of that node's cluster (`stackd node cert "
                 "--out DIR` on one of its members writes it)")
    if isinstance(exc, (ssl.SSLError, ConnectionResetError, NoAnswer)):
        # The daemon ends the handshake of a client it does not trust: an alert, a
        # reset or (hypercorn's way) the connection closed before any answer.
        return UnavailableError(
            f"the daemon at {remote.url} refused this client's certificate "
            f"({getattr(exc, 'reason', None) or exc})",
            hint="use a certificate of that node's cluster: --tlscert/--tlskey/--tlscacert "
                 "from `stackd node cert --out DIR` on one of its members")
    if isinstance(exc, ConnectionRefusedError):
        return UnavailableError(
            f"no stackd daemon answers at {remote.url} (connection refused)",
            hint="is the node up and joined with `stackd node join --listen HOST:PORT`? "
                 "`stackd node ls` shows the nodes")
    if isinstance(exc, TimeoutError):
        return UnavailableError(f"no answer from {remote.url} (timed out)",
                                hint="check the address and that the node is reachable")
    return UnavailableError(f"lost the stackd daemon at {remote.url}: {exc}",
                            hint="check the address; `stackd node ls` shows the nodes")
