"""A typed etcd v3 client over etcd's JSON gateway (grpc-gateway), for trio.

Why the gateway and not a library: the PyPI etcd3 clients speak gRPC through grpcio,
whose asyncio and thread model do not fit trio, and the best known (python-etcd3) is
unmaintained. The gateway is part of every etcd ≥ 3.4 on the client port, and httpx's
AsyncClient runs under trio natively (httpcore has a trio backend), so every call here
is an ordinary awaitable with no worker thread.

Everything lives under one prefix (`Store.prefix`): callers name keys relative to it
and never see it. Every write that depends on a read is a transaction on the read's
revision (`Txn`, `put_if`, `create`, `delete_if`); the plain `put` is for keys only one
writer owns.

Endpoints are tried in order; a connection failure moves to the next one, so a
client keeps working while a minority of members is down. A request that reached a
member is not retried elsewhere (a put could then happen twice); a transaction is
safe to retry only because its compare fails the second time, and the caller decides.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import trio

from stackd.errors import StackdError, UnavailableError


class StoreUnavailableError(UnavailableError):
    """No etcd endpoint answered."""


class _LeaderLost(StoreUnavailableError):
    """The member answered that it has no raft leader now (an election, or no quorum)."""


class StoreError(StackdError):
    """etcd answered with an error it should not have (a bug here, or a wrong server)."""


def _why(e: httpx.HTTPError, timeout: float) -> str:
    """What went wrong, in words: httpx's timeouts often carry no text at all."""
    if isinstance(e, httpx.TimeoutException) and not str(e):
        return f"no answer in {timeout:g} s"
    return str(e) or type(e).__name__


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _json_object(endpoint: str, path: str, body: bytes) -> dict[str, Any]:
    """An answer's JSON object; anything else means the endpoint is not etcd's gateway."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"{endpoint} answered {path} with something other than etcd's "
                         f"JSON: {body[:80]!r}",
                         hint="point --etcd at an etcd (>= 3.4) client URL")
    return data


def _prefix_end(key: bytes) -> bytes:
    """The first key after every key starting with `key` (etcd's range_end for a prefix)."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[:i + 1])
    return b"\0"  # all 0xff: to the end of the keyspace


@dataclass(frozen=True, slots=True)
class KV:
    """One key as etcd returns it; `key` is relative to the store's prefix."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True, slots=True)
class Event:
    """A watch event: a put (with the new value) or a delete (`kv.value` empty)."""

    type: Literal["PUT", "DELETE"]
    kv: KV


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction: `target` of `key` `op` `value`.

    create_revision == 0 means "the key does not exist"; mod_revision == r means "no one
    wrote the key since I read it at r".
    """

    key: str
    target: Literal["CREATE", "MOD", "VERSION", "VALUE", "LEASE"]
    op: Literal["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
    value: int | bytes
    # Every key under `key` must meet it (none there: compared as one absent key), e.g.
    # MOD LESS r+1: nothing under the prefix was written since the read at r.
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: str
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    # For each Get of the branch that ran, in order, the keys it read.
    reads: list[list[KV]] = field(default_factory=list)


class Store:
    """An etcd v3 keyspace under `prefix`, reached through `endpoints` (http URLs)."""

    def __init__(self, endpoints: Sequence[str], prefix: str = "/stackd/",
                 timeout: float = 5.0) -> None:
        if not endpoints:
            raise StoreError("no etcd endpoint given",
                             hint="pass --etcd http://HOST:2379 (one or more)")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.prefix = prefix
        self._prefix = prefix.encode()
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout)
        self._first = 0  # the endpoint that answered last: try it first next time
        self.requests = 0  # every request sent, for the benchmark's writes per change

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the wire -----------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _kv(self, raw: dict[str, Any]) -> KV:
        full = _unb64(raw.get("key"))
        return KV(key=full[len(self._prefix):].decode(), value=_unb64(raw.get("value")),
                  create_revision=int(raw.get("create_revision", 0)),
                  mod_revision=int(raw.get("mod_revision", 0)),
                  version=int(raw.get("version", 0)), lease=int(raw.get("lease", 0)))

    def _order(self) -> list[str]:
        n = len(self.endpoints)
        return [self.endpoints[(self._first + i) % n] for i in range(n)]

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # A read caught by a raft election gets "leader changed"; the election is over
        # in about a second, and a read is safe to send again, as etcd's own client
        # does. A write is not: the old leader may have applied it.
        deadline = trio.current_time() + self.timeout
        while True:
            try:
                return await self._call_once(path, body)
            except _LeaderLost:
                if path != "kv/range" or trio.current_time() >= deadline:
                    raise
                await trio.sleep(0.05)

    async def _call_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        failures: list[str] = []
        for i, endpoint in enumerate(self._order()):
            try:
                resp = await self._client.post(f"{endpoint}/v3/{path}", json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                failures.append(f"{endpoint}: {_why(e, self.timeout)}")
                continue
            except httpx.HTTPError as e:
                raise StoreUnavailableError(
                    f"etcd at {endpoint} did not answer {path}: {_why(e, self.timeout)}",
                    hint="check that the etcd cluster has a quorum") from e
            self._first = (self._first + i) % len(self.endpoints)
            data = _json_object(endpoint, path, resp.content)
            if resp.status_code != 200:
                message = data.get("message") or data.get("error") or resp.text
                if resp.status_code in (503, 504) or "leader" in str(message):
                    raise _LeaderLost(
                        f"etcd at {endpoint} cannot serve {path}: {message}",
                        hint="check that the etcd cluster has a quorum")
                raise StoreError(f"etcd at {endpoint} refused {path}: {message}")
            return data
        raise StoreUnavailableError(
            "no etcd endpoint answered: " + "; ".join(failures),
            hint="check the --etcd URLs and that etcd is running")

    def _compare(self, c: Compare) -> dict[str, Any]:
        out: dict[str, Any] = {"key": _b64(self._key(c.key)), "target": c.target,
                               "result": c.op}
        if c.prefix:
            out["range_end"] = _b64(_prefix_end(self._key(c.key)))
        field_name = {"CREATE": "create_revision", "MOD": "mod_revision",
                      "VERSION": "version", "VALUE": "value", "LEASE": "lease"}[c.target]
        if isinstance(c.value, bytes):
            out[field_name] = _b64(c.value)
        else:
            out[field_name] = str(c.value)
        return out

    def _op(self, op: Op) -> dict[str, Any]:
        if isinstance(op, Put):
            put: dict[str, Any] = {"key": _b64(self._key(op.key)), "value": _b64(op.value)}
            if op.lease:
                put["lease"] = str(op.lease)
            return {"request_put": put}
        if isinstance(op, Delete):
            key = self._key(op.key)
            rng: dict[str, Any] = {"key": _b64(key)}
            if op.prefix:
                rng["range_end"] = _b64(_prefix_end(key))
            return {"request_delete_range": rng}
        key = self._key(op.key)
        get: dict[str, Any] = {"key": _b64(key)}
        if op.prefix:
            get["range_end"] = _b64(_prefix_end(key))
        return {"request_range": get}

    # -- key-value ------------------------------------------------------------------

    async def get(self, key: str) -> KV | None:
        data = await self._call("kv/range", {"key": _b64(self._key(key))})
        kvs = data.get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    async def range(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under `prefix`, in key order, and the revision they were read at."""
        key = self._key(prefix)
        data = await self._call("kv/range", {"key": _b64(key),
                                             "range_end": _b64(_prefix_end(key))})
        return ([self._kv(raw) for raw in data.get("kvs") or []],
                int(data["header"]["revision"]))

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Write unconditionally (for a key only this writer owns); the new revision."""
        body: dict[str, Any] = {"key": _b64(self._key(key)), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        data = await self._call("kv/put", body)
        return int(data["header"]["revision"])

    async def delete(self, key: str, prefix: bool = False) -> int:
        """Delete `key` (or every key under it); how many were deleted."""
        k = self._key(key)
        body: dict[str, Any] = {"key": _b64(k)}
        if prefix:
            body["range_end"] = _b64(_prefix_end(k))
        data = await self._call("kv/deleterange", body)
        return int(data.get("deleted", 0))

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        body = {"compare": [self._compare(c) for c in compare],
                "success": [self._op(o) for o in success],
                "failure": [self._op(o) for o in failure]}
        data = await self._call("kv/txn", body)
        reads = [[self._kv(raw) for raw in r["response_range"].get("kvs") or []]
                 for r in data.get("responses") or [] if "response_range" in r]
        return TxnResult(succeeded=bool(data.get("succeeded", False)),
                         revision=int(data["header"]["revision"]), reads=reads)

    async def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        """Write `key` only if it does not exist; whether it was written."""
        result = await self.txn([Compare(key, "CREATE", "EQUAL", 0)],
                                [Put(key, value, lease)])
        return result.succeeded

    async def put_if(self, key: str, value: bytes, mod_revision: int, lease: int = 0) -> bool:
        """Write `key` only if no one wrote it since `mod_revision` (0: if it is absent)."""
        target: Literal["CREATE", "MOD"] = "MOD" if mod_revision else "CREATE"
        result = await self.txn([Compare(key, target, "EQUAL", mod_revision)],
                                [Put(key, value, lease)])
        return result.succeeded

    async def delete_if(self, key: str, mod_revision: int) -> bool:
        result = await self.txn([Compare(key, "MOD", "EQUAL", mod_revision)], [Delete(key)])
        return result.succeeded

    # -- leases ---------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        data = await self._call("lease/grant", {"TTL": str(ttl)})
        return int(data["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew `lease`; its remaining TTL, 0 if it has expired (then its keys are gone)."""
        data = await self._call("lease/keepalive", {"ID": str(lease)})
        return int(data.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        """End `lease` now, deleting every key attached to it. An expired lease is fine."""
        try:
            await self._call("lease/revoke", {"ID": str(lease)})
        except StoreError as e:
            if "not found" not in e.message:
                raise

    # -- watch ------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[Event, None]:
        """Every change under `prefix` from `start_revision` on, as it happens.

        Read with `range` first, then watch from its revision + 1: no change falls
        between. Ends (StoreUnavailableError) when the member it streams from goes away;
        the caller re-reads and watches again, as an informer relists.
        """
        key = self._key(prefix)
        body = {"create_request": {"key": _b64(key), "range_end": _b64(_prefix_end(key)),
                                   "start_revision": str(start_revision)}}
        failures: list[str] = []
        for endpoint in self._order():
            try:
                async with self._client.stream(
                        "POST", f"{endpoint}/v3/watch", json=body,
                        timeout=httpx.Timeout(5.0, read=None)) as resp:
                    async for line in resp.aiter_lines():
                        if not line.strip():
                            continue
                        msg = _json_object(endpoint, "watch", line.encode())
                        if "error" in msg:
                            raise StoreUnavailableError(
                                f"etcd at {endpoint} ended a watch: {msg['error']}")
                        result = msg.get("result", {})
                        if result.get("compact_revision") not in (None, "0"):
                            raise StoreUnavailableError(
                                f"watch of {prefix!r} from revision {start_revision}: "
                                "etcd compacted it away; read again")
                        for ev in result.get("events") or []:
                            yield Event(type=ev.get("type", "PUT"), kv=self._kv(ev["kv"]))
                raise StoreUnavailableError(f"etcd at {endpoint} closed a watch of {prefix!r}")
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                failures.append(f"{endpoint}: {_why(e, 5.0)}")
            except httpx.HTTPError as e:
                raise StoreUnavailableError(
                    f"watch of {prefix!r} at {endpoint} broke: {_why(e, 5.0)}") from e
        raise StoreUnavailableError("no etcd endpoint answered a watch: " + "; ".join(failures),
                                    hint="check the --etcd URLs and that etcd is running")
