"""`stackd daemon`: the long-running process. Serves the API on a unix socket, runs the loop.

The socket is made with umask 0177 (mode 0600, owned by root) inside a 0700 run dir:
only root can connect, as with Docker's socket minus the group. SIGTERM or SIGINT
stop the daemon gracefully; containers keep running (each has its own monitor
process) and the next daemon adopts them.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from stackd.daemon import jsonlog, slowsteps
from stackd.daemon.api import make_app
from stackd.daemon.clustering import Membership
from stackd.daemon.desired_store import db_path
from stackd.daemon.engine import Engine
from stackd.daemon.paths import pid_path, socket_path
from stackd.daemon.pidfile import PidFile
from stackd.daemon.world import World
from stackd.roots import Roots
from stackd.state.db import StateDB

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

    from stackd.daemon.extensions import Extension

log = logging.getLogger("stackd.daemon")
CHECKPOINT_EVERY = 1.0
# What the engine's start, the first apply and the first of each request import: the
# adapters' modules (pyroute2, the image store, the supervisor; ~0.25 s of reading and
# compiling), and those the handlers import lazily (each one a step on the loop).
START_IMPORTS = ("stackd.daemon.revision", "stackd.images.store", "stackd.netbridge.networks",
                 "stackd.netbridge.dnsfeed", "stackd.reconciler.ports",
                 "stackd.reconciler.supervisor", "stackd.runtime.runtime",
                 "stackd.state.intents", "stackd.state.volumes", "stackd.daemon.oneoff",
                 "stackd.daemon.stack_images", "stackd.daemon.pinned_images",
                 "stackd.daemon.single", "stackd.hostinfo", "stackd.reconciler.rolling")


def hypercorn_config(roots: Roots) -> Config:
    config = Config()
    config.bind = [f"unix:{socket_path(roots)}"]
    config.umask = 0o177
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2.0
    # Streams (logs -f, events) are long-lived; idle keep-alive connections are not.
    config.keep_alive_timeout = 30.0
    return config


async def serve(roots: Roots, world: World, db: StateDB, *, resync_period: float = 30.0,
                extensions: Sequence[Extension] = (),
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    engine = Engine(roots, world, db, resync_period=resync_period)
    membership = Membership(roots)
    membership.attach(engine, world)
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:

            async def api(task_status: trio.TaskStatus[list[str]]) -> None:
                # hypercorn's ASGI protocol types don't name Starlette's app class.
                # Building the app (FastAPI's route and model set-up, ~60 ms of CPU) is
                # a worker thread's: the engine's tasks already run.
                app = cast("ASGIFramework", await trio.to_thread.run_sync(
                    make_app, engine, extensions, membership))
                # A cluster member's `--listen`: the same app on TCP, mutual TLS.
                membership.serve_api_with(functools.partial(_serve_tls, app, roots, stop))
                await hypercorn_serve(app, hypercorn_config(roots),
                                      shutdown_trigger=stop.wait, task_status=task_status)
                # The API has drained after SIGTERM: stop the loop too.
                nursery.cancel_scope.cancel()

            nursery.start_soon(_signals, stop)
            # What start-up imports (the adapters' modules, ~0.25 s) is read and
            # compiled in a worker thread, not in the loop's first steps.
            await trio.to_thread.run_sync(_import_for_start)
            nursery.start_soon(_checkpoints, db)
            await nursery.start(engine.run)
            await nursery.start(membership.run)
            for extension in extensions:
                await nursery.start(functools.partial(extension.run, engine))
            await nursery.start(api)
            os.chmod(socket_path(roots), 0o600)
            log.info("listening", extra={"socket": str(socket_path(roots)),
                                         "pid": os.getpid(), "root_id": roots.id})
            task_status.started()
            nursery.start_soon(trio.to_thread.run_sync, _warm_up)
    finally:
        engine.close()
        try:
            socket_path(roots).unlink()
        except FileNotFoundError:
            pass


async def _serve_tls(app: ASGIFramework, roots: Roots, stop: trio.Event, listen: str, *,
                     task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                     ) -> None:
    """The API on `listen` (HOST:PORT) for clients with a certificate of the cluster's
    CA: the node's own identity serves, and a client without one is refused in the
    handshake (docs/cluster.md, the remote API)."""
    import ssl

    from stackd.cluster.pki import node_identity

    identity = node_identity(roots.state)
    config = hypercorn_config(roots)
    config.bind = [listen]
    config.certfile, config.keyfile = str(identity.cert), str(identity.key)
    config.ca_certs = str(identity.ca)
    config.verify_mode = ssl.CERT_REQUIRED
    log.info("listening", extra={"tcp": listen, "tls": "mutual"})
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)


def _import_for_start() -> None:
    for module in START_IMPORTS:
        importlib.import_module(module)


async def _checkpoints(db: StateDB) -> None:
    """The WAL's checkpoints, in a worker thread on a connection of their own: the
    daemon's connection has autocheckpoint off, so its commits are appends to the WAL
    (no fsync at synchronous=NORMAL) and stay short on the trio thread; the fsyncs
    a checkpoint does (up to ~30 ms measured) happen here."""
    db.conn.execute("PRAGMA wal_autocheckpoint=0")
    conn = await trio.to_thread.run_sync(functools.partial(
        sqlite3.connect, db.path, timeout=30, isolation_level=None, check_same_thread=False))
    try:
        while True:
            await trio.sleep(CHECKPOINT_EVERY)
            await trio.to_thread.run_sync(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def _warm_up() -> None:
    """Once listening, in a worker thread: what the first `up` and the first health
    check would otherwise wait for — the reconciler's imports (networkx, the scheduler:
    ~0.4 s) and exec's fork server (its imports: ~0.4 s)."""
    import stackd.reconciler.reconcile  # noqa: F401
    from stackd.runtime.exec import start_fork_server

    try:
        start_fork_server()
    except Exception:  # the first exec starts it then, and reports why if it cannot
        log.warning("exec fork server did not start", exc_info=True)
    # What is loaded by now (modules, the app, the engine) lives as long as the daemon:
    # out of the collector's sight, a full collection no longer walks it — a pause of
    # tens of ms of CPU in whichever loop step it fell on.
    gc.freeze()


async def _signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop.set()
            return


def main(roots: Roots | None = None, *, resync_period: float = 30.0,
         extensions: Sequence[Extension] = ()) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; the exit code."""
    from stackd.daemon.adapters import make_world

    # 022, not 077: image layers unpacked here must stay traversable by a container's
    # non-root users. What is private is made so explicitly, by mode (stackd.filemodes),
    # whatever umask the process that started us had.
    os.umask(0o022)
    roots = (roots or Roots.from_env()).ensure()
    jsonlog.configure(sys.stderr)
    pidfile = PidFile(pid_path(roots))
    pidfile.acquire()
    db = StateDB.open(db_path(roots.state))
    try:
        world = make_world(roots, db)
        trio.run(functools.partial(serve, roots, world, db, resync_period=resync_period,
                                   extensions=extensions),
                 instruments=slowsteps.from_env())
    finally:
        db.close()
        pidfile.release()
    return 0
