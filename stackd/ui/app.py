"""The console's pages and streams: a Starlette app in front of the daemon's API.

Every page is a view of what the CLI reads (`GET /v1/…` through daemonapi.py), and
every action the request the CLI sends, named by the token's actor. Live parts follow
the daemon's event stream: `/_sse/changes` turns the stack's events into a
`changed` server-sent event (coalesced), on which htmx fetches the fragment again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import trio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stackd.daemon import wire
from stackd.errors import ConflictError, NotFoundError, StackdError, UsageError
from stackd.ui import auth, charts, pages
from stackd.ui.daemonapi import DaemonAPI, Stream
from stackd.ui.gate import Gate, Who

STATIC = Path(__file__).resolve().parent / "static"
COALESCE = 0.25  # seconds: one `changed` for a burst of events (a scale is dozens)
STATS_PERIOD = 1.0
STATS_KEPT = 60
LOG_TAIL = 100

Emit = Callable[[str, str], Awaitable[None]]


def make_app(api: DaemonAPI, *, tokens: auth.Tokens, sessions: auth.Sessions,
             hosts: frozenset[str], secure: bool) -> Gate:
    views = Views(api)
    routes = [
        Route("/", views.stacks),
        Route("/_frag/stacks", views.stacks_fragment),
        Route("/stacks/{project}", views.stack),
        Route("/_frag/stack/{project}", views.stack_fragment),
        Route("/_frag/stack/{project}/history", views.history_fragment),
        Route("/_frag/stack/{project}/plan", views.plan_fragment),
        Route("/containers/{name}", views.container),
        Route("/_frag/container/{name}", views.container_fragment),
        Route("/gitops", views.gitops),
        Route("/_frag/gitops", views.gitops_fragment),
        Route("/events", views.events),
        Route("/images", views.images),
        Route("/networks", views.networks),
        Route("/volumes", views.volumes),
        Route("/actions/{kind}", views.confirm, methods=["GET"]),
        Route("/actions/{kind}", views.act, methods=["POST"]),
        Route("/_sse/changes", views.sse_changes),
        Route("/_sse/events", views.sse_events),
        Route("/_sse/container/{name}", views.sse_container),
        Route("/favicon.ico", lambda _: Response(status_code=204)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    async def stackd_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StackdError)
        return HTMLResponse(pages.error_page(exc.message, exc.hint or "",
                                             actor=_who(request).actor),
                            status_code=wire.status_of(exc))

    app = Starlette(routes=routes, exception_handlers={StackdError: stackd_error})
    return Gate(app, tokens=tokens, sessions=sessions, hosts=hosts, secure=secure)


def _who(request: Request) -> Who:
    who = request.scope.get("state", {}).get("who")
    assert isinstance(who, Who), "the gate lets no request through without one"
    return who


class Views:
    def __init__(self, api: DaemonAPI) -> None:
        self.api = api

    # -- reads ----------------------------------------------------------------------

    async def _stack_status(self, project: str) -> dict[str, Any]:
        for s in await self.api.get("/v1/stacks"):
            if s["project"] == project:
                return dict(s)
        raise NotFoundError(f"the daemon keeps no stack named {project!r}",
                            hint="the Stacks page lists the ones it keeps")

    async def _describe(self, project: str) -> dict[str, Any] | None:
        try:
            return dict(await self.api.get(f"/v1/stacks/{quote(project)}/graph"))
        except NotFoundError:
            return None

    async def _seq(self, project: str | None = None) -> int:
        """The last event the daemon kept (of `project`): read before the state a page
        shows, so its stream starts there and no change falls between the two."""
        past = await self.api.get_lines("/v1/events", project=project, follow=False)
        return int(past[-1]["seq"]) if past else 0

    async def _sources(self) -> list[dict[str, Any]]:
        """The GitOps sources' statuses (none from a daemon without GitOps)."""
        try:
            return list(await self.api.get("/v1/gitops/sources"))
        except NotFoundError:
            return []

    async def _source(self, name: str) -> dict[str, Any] | None:
        """The source that keeps stack `name` (it bears the stack's name), if any."""
        return next((s for s in await self._sources() if s.get("name") == name), None)

    async def _stacks_html(self) -> str:
        stacks = await self.api.get("/v1/stacks")
        containers = await self.api.get("/v1/containers", all=True)
        desired = {}
        for s in stacks:
            d = await self._describe(s["project"]) if s["phase"] == "active" else None
            desired[s["project"]] = sum(int(x["replicas"]) for x in d["services"]) if d else 0
        sources = {str(s["name"]): s for s in await self._sources()}
        return pages.stacks_fragment(stacks, containers, desired, sources)

    async def stacks(self, request: Request) -> Response:
        since = await self._seq()
        return HTMLResponse(pages.stacks_page(await self._stacks_html(), since=since,
                                              actor=_who(request).actor))

    async def stacks_fragment(self, request: Request) -> Response:
        return HTMLResponse(await self._stacks_html())

    async def _stack_html(self, project: str) -> tuple[str, dict[str, Any] | None, int]:
        """The stack's fragment, its description, and the last event seen before it."""
        events = await self.api.get_lines("/v1/events", project=project, follow=False)
        described = await self._describe(project)
        containers = await self.api.get("/v1/containers", project=project, all=True)
        source = await self._source(project)
        since = int(events[-1]["seq"]) if events else 0
        return (pages.stack_fragment(project, described, containers, events, source),
                described, since)

    async def _history_html(self, project: str) -> str:
        status = await self._stack_status(project)
        try:
            history = await self.api.get(f"/v1/stacks/{quote(project)}/history")
        except NotFoundError:
            history = []
        return pages.history_fragment(project, history, status["generation"])

    async def stack(self, request: Request) -> Response:
        project = request.path_params["project"]
        await self._stack_status(project)  # a 404 page for a stack the daemon lacks
        fragment, described, since = await self._stack_html(project)
        graph = '<p class="muted">No applied revision to draw.</p>'
        if described is not None:
            svg = await charts.graph_svg(described["dot"])
            graph = svg if svg is not None else (
                '<p class="muted">Graphviz (`dot`) is not installed; the graph as dot:</p>'
                f"<pre>{pages.e(described['dot'])}</pre>")
        return HTMLResponse(pages.stack_page(project, fragment, graph,
                                             await self._history_html(project),
                                             since=since, actor=_who(request).actor))

    async def stack_fragment(self, request: Request) -> Response:
        return HTMLResponse((await self._stack_html(request.path_params["project"]))[0])

    async def history_fragment(self, request: Request) -> Response:
        return HTMLResponse(await self._history_html(request.path_params["project"]))

    async def plan_fragment(self, request: Request) -> Response:
        project = request.path_params["project"]
        status = await self._stack_status(project)
        try:
            if await self._source(project) is not None:
                # A GitOps stack's files are its branch's: what the next sync would do
                # (`stackd gitops diff`), not its unpacked tree compared with itself.
                plan = await self.api.post(f"/v1/gitops/sources/{quote(project, safe='')}"
                                           "/diff", None, actor=_who(request).actor)
            else:
                plan = await self.api.post("/v1/stacks/plan",
                                           {"source": source_of(status)},
                                           actor=_who(request).actor)
        except StackdError as exc:
            return HTMLResponse(pages.plan_fragment(None, exc.message))
        return HTMLResponse(pages.plan_fragment(plan))

    async def _container_html(self, name: str) -> tuple[str, dict[str, Any] | None, int]:
        """The container's fragment, its row, and the last event seen before them."""
        events = await self.api.get_lines("/v1/events", follow=False)
        since = int(events[-1]["seq"]) if events else 0
        rows = await self.api.get("/v1/containers", all=True)
        row = next((r for r in rows if name in (r.get("name"), r.get("id"))), None)
        definition = None
        if row is not None and row.get("project"):
            events = [ev for ev in events if ev.get("project") == row["project"]]
            described = await self._describe(row["project"])
            if described is not None:
                definition = next((s["definition"] for s in described["services"]
                                   if s["name"] == row.get("service")), None)
        return pages.container_fragment(row, definition, events), row, since

    async def container(self, request: Request) -> Response:
        name = request.path_params["name"]
        fragment, row, since = await self._container_html(name)
        if row is None:
            raise NotFoundError(f"no container named {name!r}",
                                hint="a stack's page lists its containers")
        return HTMLResponse(pages.container_page(
            str(row["name"]), fragment, project=row.get("project"),
            service=row.get("service"), since=since, actor=_who(request).actor))

    async def container_fragment(self, request: Request) -> Response:
        return HTMLResponse((await self._container_html(request.path_params["name"]))[0])

    async def gitops(self, request: Request) -> Response:
        since = await self._seq()
        return HTMLResponse(pages.gitops_page(pages.gitops_fragment(await self._sources()),
                                              since=since, actor=_who(request).actor))

    async def gitops_fragment(self, request: Request) -> Response:
        return HTMLResponse(pages.gitops_fragment(await self._sources()))

    async def events(self, request: Request) -> Response:
        past = await self.api.get_lines("/v1/events", follow=False)
        since = past[-1]["seq"] if past else 0
        return HTMLResponse(pages.events_page(past[-200:], since=since,
                                              actor=_who(request).actor))

    async def images(self, request: Request) -> Response:
        return HTMLResponse(pages.images_page(await self.api.get("/v1/images"),
                                              actor=_who(request).actor))

    async def networks(self, request: Request) -> Response:
        rows = await self.api.get("/v1/containers", all=True)
        names = {str(r["id"]): str(r["name"]) for r in rows}
        return HTMLResponse(pages.networks_page(await self.api.get("/v1/networks"), names,
                                                actor=_who(request).actor))

    async def volumes(self, request: Request) -> Response:
        return HTMLResponse(pages.volumes_page(await self.api.get("/v1/volumes"),
                                               actor=_who(request).actor))

    # -- actions: a confirmation page (GET), then the request (POST) ------------------

    async def confirm(self, request: Request) -> Response:
        who = _who(request)
        kind = request.path_params["kind"]
        q = request.query_params
        csrf = who.session.csrf if who.session is not None else ""
        if kind == "sync":
            name = _require(q.get("source"), "GitOps source")
            await self.api.get(f"/v1/gitops/sources/{quote(name, safe='')}")  # 404 page
            back = "stack" if q.get("back") == "stack" else ""
            return HTMLResponse(pages.confirm_page(
                kind, f"Sync GitOps source {name} now? Its branch is fetched and the "
                "newest commit applied to stack " + name + ".",
                {"source": name, "back": back or None}, csrf=csrf, actor=who.actor,
                cancel=_back_to(name, back)))
        project, service = q.get("project", ""), q.get("service") or None
        await self._stack_status(project)
        fields: dict[str, object] = {"project": project, "service": service}
        number = None
        if kind in ("restart", "stop", "start"):
            question = f"{kind.capitalize()} service {service} of stack {project}?"
            _require(service, "service")
        elif kind == "scale":
            _require(service, "service")
            question = f"Set the number of replicas of {service} in stack {project}:"
            number = ("replicas", _int(q.get("replicas", "1"), "replicas"))
        elif kind == "rollback":
            revision = _int(q.get("revision", ""), "revision")
            fields["revision"] = revision
            question = (f"Roll stack {project} back to revision {revision}? It is applied "
                        "again as a new revision.")
        else:
            raise NotFoundError(f"no action {kind!r}",
                                hint="restart, stop, start, scale, rollback or sync")
        return HTMLResponse(pages.confirm_page(kind, question, fields, csrf=csrf,
                                               actor=who.actor, number=number))

    async def act(self, request: Request) -> Response:
        who = _who(request)
        kind = request.path_params["kind"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if kind == "sync":
            # `stackd gitops sync`'s request; it answers once the sync is done, so the
            # page redirected to shows its outcome (a failure is the source's status).
            name = _require(form.get("source"), "GitOps source")
            await self.api.post(f"/v1/gitops/sources/{quote(name, safe='')}/sync", None,
                                actor=who.actor)
            return RedirectResponse(_back_to(name, form.get("back", "")), status_code=303)
        project = form.get("project", "")
        service = form.get("service") or None
        status = await self._stack_status(project)
        p = quote(project)
        if kind in ("restart", "stop", "start"):
            service = _require(service, "service")
            stream = await self.api.open_stream("POST", f"/v1/stacks/{p}/{kind}",
                                                body={"services": [service]}, actor=who.actor)
        elif kind == "scale":
            service = _require(service, "service")
            n = _int(form.get("replicas", ""), "replicas")
            stream = await self.api.open_stream(
                "POST", "/v1/stacks/apply", actor=who.actor,
                body={"source": source_of(status),
                      "options": {"services": [service], "scale": {service: n}}})
        elif kind == "rollback":
            revision = _int(form.get("revision", ""), "revision")
            await self._check_previous(project, status["generation"], revision)
            stream = await self.api.open_stream("POST", f"/v1/stacks/{p}/rollback",
                                                actor=who.actor)
        else:
            raise NotFoundError(f"no action {kind!r}",
                                hint="restart, stop, start, scale, rollback or sync")
        # Accepted: the stack's page shows the rest live; the stream is read to its
        # end after this answer, so the daemon's request runs its course.
        return RedirectResponse(f"/stacks/{p}", status_code=303,
                                background=BackgroundTask(_drain, stream))

    async def _check_previous(self, project: str, current: int, revision: int) -> None:
        """The daemon rolls back to the revision before the current one: refuse when
        that is no longer the one the user confirmed (someone applied meanwhile)."""
        history = await self.api.get(f"/v1/stacks/{quote(project)}/history")
        earlier = [r["number"] for r in history
                   if r.get("cause") != "down" and r["number"] < current]
        if not earlier or earlier[-1] != revision:
            raise ConflictError(
                f"stack {project} is now at revision {current}; revision {revision} is not "
                "the one before it", hint="reload the stack's page and choose again")

    # -- live -------------------------------------------------------------------------

    async def sse_changes(self, request: Request) -> Response:
        project = request.query_params.get("project") or None
        since = _int(request.query_params.get("since", "0"), "since", top=2**62)
        return EventStream([lambda emit: self._changes(emit, project, None, since)])

    async def sse_events(self, request: Request) -> Response:
        since = _int(request.query_params.get("since", "0"), "since", top=2**62)

        async def events(emit: Emit) -> None:
            stream = await self.api.open_stream("GET", "/v1/events", since=since,
                                                follow=True)
            try:
                async for ev in stream.items():
                    await emit("event", pages.event_row(ev))
            finally:
                await stream.aclose()

        return EventStream([events])

    async def sse_container(self, request: Request) -> Response:
        name = request.path_params["name"]
        since = _int(request.query_params.get("since", "0"), "since", top=2**62)
        rows = await self.api.get("/v1/containers", all=True)
        row = next((r for r in rows if name in (r.get("name"), r.get("id"))), None)
        if row is None:
            raise NotFoundError(f"no container named {name!r}")
        producers: list[Callable[[Emit], Awaitable[None]]] = [
            lambda emit: self._logs(emit, name), lambda emit: self._stats(emit, name)]
        if row.get("project"):
            producers.append(lambda emit: self._changes(emit, row["project"], name, since))
        return EventStream(producers)

    async def _changes(self, emit: Emit, project: str | None, container: str | None,
                       since: int) -> None:
        """`changed` after the events of `project` (of `container`, when given) that
        came after event `since` (the last one before the page was read), coalesced:
        one per burst, COALESCE seconds after its first event."""
        dirty = trio.Event()

        async def announce() -> None:
            nonlocal dirty
            while True:
                await dirty.wait()
                await trio.sleep(COALESCE)
                dirty = trio.Event()
                await emit("changed", str(time.time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(announce)
            stream = await self.api.open_stream("GET", "/v1/events", project=project,
                                                since=since, follow=True)
            try:
                async for ev in stream.items():
                    if container is None or ev.get("container") in (None, container):
                        dirty.set()
            finally:
                await stream.aclose()
            nursery.cancel_scope.cancel()

    async def _logs(self, emit: Emit, name: str) -> None:
        """The container's log, live: the last LOG_TAIL lines, then each as written;
        followed again (new lines only) after the container restarts."""
        tail = LOG_TAIL
        while True:
            try:
                stream = await self.api.open_stream("GET", f"/v1/containers/{quote(name)}/logs",
                                                    follow=True, tail=tail)
                try:
                    async for rec in stream.items():
                        await emit("log", pages.log_line(rec))
                finally:
                    await stream.aclose()
            except StackdError:
                pass  # gone for now (restarting); look again below
            tail = 0
            await trio.sleep(1.0)

    async def _stats(self, emit: Emit, name: str) -> None:
        """Sampled here, once a second, and pushed: the browser never polls."""
        samples: deque[dict[str, float]] = deque(maxlen=STATS_KEPT)
        last: tuple[float, int] | None = None
        while True:
            try:
                s = await self.api.get(f"/v1/containers/{quote(name)}/stats")
            except StackdError:
                s = None
            now = time.monotonic()
            if s is not None:
                cpu = 0.0
                if last is not None and now > last[0] and s["cpu_ns"] >= last[1]:
                    cpu = (s["cpu_ns"] - last[1]) / 1e9 / (now - last[0]) * 100
                last = (now, int(s["cpu_ns"]))
                samples.append({"cpu": cpu, "memory": s["memory_bytes"] / 2**20,
                                "pids": float(s["pids"])})
                await emit("stats", pages.charts(list(samples)))
            await trio.sleep(STATS_PERIOD)


class EventStream(Response):
    """A text/event-stream answer fed by producers running side by side, until the
    browser leaves (or every producer ended). Not a generator handed to Starlette: the
    producers run tasks, and a generator must not yield inside a nursery."""

    media_type = "text/event-stream"

    def __init__(self, producers: list[Callable[[Emit], Awaitable[None]]]) -> None:
        super().__init__()
        self.producers = producers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Headers of its own: Response's would say Content-Length: 0.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-store"),
                                (b"x-accel-buffering", b"no")]})
        lock = trio.Lock()

        async def emit(event: str, data: str) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": pages.sse(event, data),
                            "more_body": True})

        async def until_gone(cancel: trio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async def run(producer: Callable[[Emit], Awaitable[None]]) -> None:
            try:
                await producer(emit)
            except StackdError as exc:  # the daemon went away: say so, end this one
                await emit("error", pages.e(exc.message))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_gone, nursery.cancel_scope)
            async with trio.open_nursery() as producers:
                for producer in self.producers:
                    producers.start_soon(run, producer)
            nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                pass  # the browser is gone


async def _drain(stream: Stream) -> None:
    try:
        async for _ in stream.items():
            pass
    except StackdError:
        pass  # the outcome is on the stack's page and in `stackd events`
    finally:
        await stream.aclose()


def source_of(status: dict[str, Any]) -> dict[str, Any]:
    """Where the stack's files are, as its last `up` named them (what `stackd scale`
    and `plan` send from the project directory). No shell environment: a stack whose
    files interpolate variables from the shell is scaled with `stackd scale`."""
    return {"files": status.get("files") or None, "cwd": status.get("cwd") or None,
            "project_name": status["project"]}


def _back_to(source: str, back: str) -> str:
    """Where a sync returns: the source's stack page when asked from there, else the
    GitOps page (a fixed choice: the form names no URL to redirect to)."""
    return f"/stacks/{quote(source, safe='')}" if back == "stack" else "/gitops"


def _require(value: str | None, what: str) -> str:
    if not value:
        raise UsageError(f"no {what} given", hint="choose one on the stack's page")
    return value


def _int(text: str, what: str, *, top: int = 10_000) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, not {text[:20]!r}") from None
    if not 0 <= n <= top:
        raise UsageError(f"{what} must be between 0 and {top}")
    return n
