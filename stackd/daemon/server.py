"""`stackd daemon`: the long-running process. Serves the API on a unix socket, runs the loop.

The socket is made with umask 0177 (mode 0600, owned by root) inside a 0700 run dir:
only root can connect, as with Docker's socket minus the group. SIGTERM or SIGINT
stop the daemon gracefully; containers keep running (each has its own monitor
process) and the next daemon adopts them.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from stackd.daemon import jsonlog
from stackd.daemon.api import make_app
from stackd.daemon.desired_store import db_path
from stackd.daemon.engine import Engine
from stackd.daemon.paths import pid_path, socket_path
from stackd.daemon.pidfile import PidFile
from stackd.daemon.world import World
from stackd.roots import Roots
from stackd.state.db import StateDB

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

log = logging.getLogger("stackd.daemon")


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
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    engine = Engine(roots, world, db, resync_period=resync_period)
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:

            async def api(task_status: trio.TaskStatus[list[str]]) -> None:
                # hypercorn's ASGI protocol types don't name Starlette's app class.
                app = cast("ASGIFramework", make_app(engine))
                await hypercorn_serve(app, hypercorn_config(roots),
                                      shutdown_trigger=stop.wait, task_status=task_status)
                # The API has drained after SIGTERM: stop the loop too.
                nursery.cancel_scope.cancel()

            nursery.start_soon(_signals, stop)
            await nursery.start(engine.run)
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


async def _signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop.set()
            return


def main(roots: Roots | None = None, *, resync_period: float = 30.0) -> int:
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
        trio.run(functools.partial(serve, roots, world, db, resync_period=resync_period))
    finally:
        db.close()
        pidfile.release()
    return 0
