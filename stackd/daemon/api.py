"""The HTTP API (FastAPI, so the OpenAPI document at /openapi.json comes from the code).

Streams (apply progress, logs, events) are NDJSON. Every StackdError becomes a JSON
error body with a status chosen by its class (see wire.py); malformed requests are
400/404/405/413/422, never 5xx, and change nothing; an error never echoes the body.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import trio
from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stackd import __version__
from stackd.daemon import wire
from stackd.daemon.bodylimit import BodyLimit
from stackd.daemon.engine import Engine
from stackd.daemon.metrics import CONTENT_TYPE
from stackd.daemon.models import (
    ApplyRequest,
    ExecRequest,
    ExecResult,
    LifecycleRequest,
    PlanRequest,
    RemoveOptions,
    StackStatus,
    Version,
)
from stackd.daemon.oneoff import ServiceRunRequest
from stackd.daemon.single import RunRequest
from stackd.daemon.streams import ChannelStream
from stackd.errors import StackdError, UnavailableError

if TYPE_CHECKING:
    from stackd.daemon.clustering import Membership

if TYPE_CHECKING:
    from stackd.daemon.extensions import Extension

log = logging.getLogger("stackd.api")

# Compose project names: lower-case letters, digits, dashes and underscores.
ProjectName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ContainerName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
BuildContainer = Annotated[str, Path(pattern=r"^build-[0-9a-f]{12}$")]
SIGNAL_ACTIONS = ("start", "stop", "restart", "kill", "remove")
LIFECYCLE_VERBS = ("start", "stop", "restart", "kill", "rm")
# Who sends a state-changing request ("cli", a web console token's name): recorded on
# the request's `action` event. A name, not a credential: the socket is root's only.
Actor = Annotated[str, Header(alias="X-Stackd-Actor", pattern=r"^[A-Za-z0-9_.@-]{0,64}$")]


def _stream(items: AsyncIterator[dict[str, Any]]) -> ChannelStream:
    """A plain generator's stream (no tasks of its own), closed as the response ends:
    a follower's log file, an event subscription, a `run --rm` container go then,
    not whenever the dropped generator is collected."""
    @trio.as_safe_channel
    async def channel() -> AsyncGenerator[dict[str, Any], None]:
        try:
            async for item in items:
                yield item
        finally:
            aclose = getattr(items, "aclose", None)  # every generator has it
            if aclose is not None:
                await aclose()

    return ChannelStream(channel)


@trio.as_safe_channel
async def _progress(engine: Engine, project: str, generation: int, after_epoch: int = -1
                    ) -> AsyncGenerator[dict[str, Any], None]:
    """An apply's or a down's stream: accepted, the stack's events, done."""
    yield {"accepted": {"project": project, "generation": generation}}
    async with engine.progress(project, generation, after_epoch) as items:
        async for item in items:
            yield item


def make_app(engine: Engine, extensions: Sequence[Extension] = (),
             membership: Membership | None = None) -> FastAPI:
    app = FastAPI(title="stackd", version=__version__,
                  description="The stackd daemon's API, served on $STACKD_RUN/stackd.sock.")
    app.add_middleware(BodyLimit)

    @app.exception_handler(StackdError)
    async def stackd_error(_: Request, exc: StackdError) -> JSONResponse:
        return JSONResponse(wire.error_body(exc), status_code=wire.status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(invalid_request_body(exc.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFoundError" if exc.status_code == 404 else "UsageError"
        return JSONResponse({"error": {"type": kind, "message": str(exc.detail)}},
                            status_code=exc.status_code)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        engine.metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        return response

    @app.get("/v1/version", response_model=Version)
    async def version() -> Version:
        return engine.version()

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def metrics() -> Response:
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/stacks", response_model=list[StackStatus])
    async def stacks() -> list[StackStatus]:
        return engine.stacks()

    @app.post("/v1/stacks/apply", responses={200: {"content": {wire.NDJSON: {}}}})
    async def apply(request: ApplyRequest, stream: bool = True, actor: Actor = "") -> Response:
        """Record the stack as desired and converge it; NDJSON progress until done."""
        project, gen = await engine.submit(request)
        scale = request.options.scale
        engine.asked(actor, "scale" if scale else "up", project,
                     services=request.options.services,
                     detail=" ".join(f"{s}={n}" for s, n in sorted(scale.items())))
        if not stream:
            return JSONResponse({"project": project, "generation": gen})

        return ChannelStream(functools.partial(_progress, engine, project, gen))

    @app.post("/v1/stacks/plan")
    async def plan(request: PlanRequest) -> dict[str, Any]:
        """What an apply would do now, changing nothing; and how the files on disk
        differ from the applied revision ({"number", "changes"}; null if none)."""
        project, actions, revision, cluster = await engine.plan_with_notes(
            request, as_up=request.as_up)
        return {"project": project, "actions": actions, "revision": revision,
                **({"cluster": cluster} if cluster else {})}

    @app.post("/v1/stacks/{project}/rollback", responses={200: {"content": {wire.NDJSON: {}}}})
    async def rollback(project: ProjectName,
                       service: Annotated[str | None, Query(max_length=63)] = None,
                       actor: Actor = "") -> Response:
        """Apply the revision before the current one again (one service of it, when
        given) as a new revision; NDJSON progress until it converged."""
        engine.asked(actor, "rollback", project, services=[service] if service else None)
        gen = await engine.rollback(project, service)
        return ChannelStream(functools.partial(_progress, engine, project, gen))

    @app.post("/v1/stacks/{project}/resume", responses={200: {"content": {wire.NDJSON: {}}}})
    async def resume(project: ProjectName) -> Response:
        """The current revision's paused rolling update goes on (failed batches tried
        again); NDJSON progress until it converged, as apply."""
        gen, epoch = await engine.resume(project)
        return ChannelStream(functools.partial(_progress, engine, project, gen, epoch))

    @app.get("/v1/stacks/{project}/history")
    async def history(project: ProjectName,
                      service: Annotated[str | None, Query(max_length=63)] = None
                      ) -> list[dict[str, Any]]:
        """The kept revisions, oldest first: number, created, cause, outcome, services,
        and the services each changed (only `service`, when given)."""
        return await engine.history(project, service)

    @app.get("/v1/stacks/{project}/graph")
    async def describe(project: ProjectName) -> dict[str, Any]:
        """The stack as its applied revision holds it: services (replicas, image,
        dependencies, definition), pinned image digests, and the dependency graph as
        Graphviz dot (`stackd graph`'s, drawn from the revision)."""
        return await engine.describe(project)

    @app.delete("/v1/stacks/{project}", responses={200: {"content": {wire.NDJSON: {}}}})
    async def remove(project: ProjectName, volumes: bool = False,
                     remove_orphans: bool = False, stream: bool = True,
                     rmi: Annotated[str | None, Query(pattern="^(local|all)$")] = None,
                     timeout: Annotated[int | None, Query(ge=0, le=86400)] = None,
                     actor: Actor = "") -> Response:
        """`down`: containers (one-offs too), networks; volumes and images when asked."""
        gen = await engine.submit_removal(project, RemoveOptions(
            volumes=volumes, remove_orphans=remove_orphans,
            images=rmi or "none", timeout=timeout))
        engine.asked(actor, "down", project)
        if not stream:
            return JSONResponse({"project": project, "generation": gen})

        return ChannelStream(functools.partial(_progress, engine, project, gen))

    @app.post("/v1/stacks/{project}/{verb}", responses={200: {"content": {wire.NDJSON: {}}}})
    async def lifecycle(
            project: ProjectName, request: LifecycleRequest,
            verb: Annotated[str, Path(pattern="^(" + "|".join(LIFECYCLE_VERBS) + ")$")],
            actor: Actor = "",
    ) -> Response:
        """A lifecycle verb, carried out by the stack's controller: NDJSON `event`s, then
        `done` with its outcome."""
        await engine.check_ask(project, verb, request.services)
        asked = engine.lifecycle(project, engine.ask(verb, request))  # errors: the response
        engine.asked(actor, verb, project, services=request.services,
                     container=",".join(request.containers) or None)
        return ChannelStream(functools.partial(engine.lifecycle_events, project, asked))

    @app.get("/v1/stacks/{project}/logs", responses={200: {"content": {wire.NDJSON: {}}}})
    async def project_logs(project: ProjectName,
                           service: Annotated[list[str] | None, Query(max_length=1000)] = None,
                           follow: bool = False,
                           tail: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
                           timestamps: bool = False,
                           since: Annotated[float | None, Query(ge=0)] = None,
                           until: Annotated[float | None, Query(ge=0)] = None) -> Response:
        """The stack's logs; with follow, also of containers started later; since and
        until (epoch seconds) keep the records written between them."""
        return ChannelStream(functools.partial(
            engine.project_logs, project, service or [], follow=follow, tail=tail,
            timestamps=timestamps, since=since, until=until))

    @app.post("/v1/containers/run", responses={200: {"content": {wire.NDJSON: {}}}})
    async def run(request: RunRequest) -> Response:
        """One container from an image (`stackd run`): started, output, exit code."""
        # errors before the start become the response
        return _stream(await engine.run_image(request))

    @app.post("/v1/stacks/run", responses={200: {"content": {wire.NDJSON: {}}}})
    async def run_service(request: ServiceRunRequest) -> Response:
        """A one-off container of a stack's service (`stackd run SERVICE`): progress of
        its dependencies, started, output, exit code. Errors come as the stream's error
        line: the stream is a safe channel, opened by the response as it sends."""
        return ChannelStream(functools.partial(engine.run_service, request))

    @app.post("/v1/build/network/{container}",
              responses={200: {"content": {wire.NDJSON: {}}}})
    async def build_network(container: BuildContainer) -> Response:
        """A `stackd build` RUN step's container on the build network (docs/images.md):
        {"netns", "files"}, then held until the client closes the stream."""
        return _stream(engine.build_network(container))

    @app.get("/v1/containers", response_class=Response,
             responses={200: {"content": {"application/json": {}}}})
    async def containers(project: Annotated[str | None, Query(max_length=63)] = None,
                         all: bool = False, cluster: bool = False) -> Response:
        """Rows of plain JSON values, serialised directly: FastAPI's generic encoder
        walks every value and is most of the time `stackd ps` waits at 500 rows.
        cluster: on a member, every node's slots, each row naming its node."""
        rows = await engine.containers(project, all, cluster)
        return Response(json.dumps(rows), media_type="application/json")

    @app.get("/v1/containers/{name}/logs", responses={200: {"content": {wire.NDJSON: {}}}})
    async def logs(name: ContainerName, follow: bool = False,
                   tail: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
                   timestamps: bool = False) -> Response:
        return _stream(engine.container_logs(name, follow=follow, tail=tail,
                                             timestamps=timestamps))

    @app.post("/v1/containers/{name}/exec", response_model=ExecResult)
    async def exec_(name: ContainerName, request: ExecRequest) -> ExecResult:
        return await engine.exec(name, request)

    @app.get("/v1/containers/{name}/stats")
    async def stats(name: ContainerName) -> dict[str, Any]:
        return await engine.stats(name)

    @app.get("/v1/containers/{name}/top")
    async def top(name: ContainerName) -> dict[str, Any]:
        return await engine.top(name)

    @app.post("/v1/containers/{name}/{action}")
    async def container_action(
            name: ContainerName,
            action: Annotated[str, Path(pattern="^(" + "|".join(SIGNAL_ACTIONS) + ")$")],
            signal: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{1,12}$")] = None,
            timeout: Annotated[int | None, Query(ge=0, le=86400)] = None,
            actor: Actor = "",
    ) -> dict[str, str]:
        engine.asked(actor, action, None, container=name)
        await engine.container_action(name, action, signal, timeout)
        return {"container": name, "action": action}

    @app.get("/v1/networks")
    async def networks() -> list[dict[str, Any]]:
        return await engine.networks()

    @app.get("/v1/volumes")
    async def volumes() -> list[dict[str, Any]]:
        return await engine.volumes()

    @app.get("/v1/images")
    async def images() -> list[dict[str, Any]]:
        return await engine.images()

    @app.post("/v1/cluster/join")
    async def cluster_join(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        from stackd.cluster.config import ClusterConfig

        if membership is None:
            raise UnavailableError("this daemon runs without cluster membership")
        return await membership.join(ClusterConfig.from_json(body))

    @app.get("/v1/cluster")
    async def cluster_status() -> dict[str, Any]:
        return await membership.status() if membership else {"config": None, "lease": 0,
                                                              "assigned": {}}

    @app.get("/v1/events", responses={200: {"content": {wire.NDJSON: {}}}})
    async def events(since: Annotated[int | None, Query(ge=0)] = None,
                     project: Annotated[str | None, Query(max_length=63)] = None,
                     follow: bool = True) -> Response:
        return _stream(engine.events(since=since, project=project, follow=follow))

    for extension in extensions:
        extension.routes(app, engine)
    return app


# An error names the field and the rule, never the value: a body may be megabytes,
# hold a secret, or a number JSON cannot carry back (NaN, 1e309).
MAX_ERRORS = 10
MAX_TEXT = 200


def invalid_request_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The 422 body of a request that failed validation: short, typed, no input."""
    details = [{"loc": _short(".".join(str(p) for p in e.get("loc", ()))),
                "msg": _short(str(e.get("msg", ""))), "type": str(e.get("type", ""))}
               for e in list(errors)[:MAX_ERRORS]]
    first = details[0] if details else {"loc": "", "msg": ""}
    return {"error": {"type": "UsageError",
                      "message": f"invalid request: {first['loc']}: {first['msg']}",
                      "details": details}}


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
