"""`stackd run`'s stream when following the container's output fails midway: the
failure reaches the client as the stream's error line. It used to escape as an
ExceptionGroup (a broken response, a traceback in the daemon's log) or, depending on
where the consumer's task stood when the follower's nursery was cancelled, end the
response cleanly with neither exit nor error (the CLI said exit code 1 and nothing
else; seen in CI)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any

import trio

from stackd.daemon.single import follow_output
from stackd.daemon.streams import ChannelStream
from stackd.errors import UnavailableError
from stackd.runtime.model import ExitStatus, LogRecord


class FailingFollow:
    """A runtime whose log follower delivers lines, then loses the monitor."""

    def __init__(self) -> None:
        self.exited = trio.Event()

    async def logs(self, cid: str, follow: bool = False) -> AsyncIterator[LogRecord]:
        for n in range(3):
            yield LogRecord(time=datetime(2026, 1, 1, second=n), stream="stdout", line=f"line {n}")
        if follow:
            await trio.sleep(0.01)  # the consumer is busy sending upward meanwhile
            raise UnavailableError("lost the runtime monitor", hint="see the daemon's log")

    async def wait(self, cid: str) -> ExitStatus:
        await self.exited.wait()
        return ExitStatus(code=3, signal=None)


class Ports:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime


async def streamed(runtime: Any, client_pace: float) -> list[dict[str, Any]]:
    """What a client reading one message every `client_pace` seconds gets of `stackd
    run`'s stream: started, then follow_output's items, as the API sends them."""
    ports = Ports(runtime)

    @trio.as_safe_channel
    async def run() -> AsyncGenerator[dict[str, Any], None]:
        yield {"started": {"id": "c1", "name": "c1"}}
        async for item in follow_output(ports, "c1"):
            yield item

    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        await trio.sleep(client_pace)
        sent.append(message.get("body", b""))

    with trio.fail_after(5):
        await ChannelStream(run).stream_response(send)
    return [json.loads(line) for chunk in sent for line in chunk.splitlines() if line]


async def test_a_follower_that_fails_sends_its_error_not_a_silent_end() -> None:
    items = await streamed(FailingFollow(), client_pace=0.005)
    assert items[0] == {"started": {"id": "c1", "name": "c1"}}
    assert any("exit" in i or "error" in i for i in items), items
    assert "lost the runtime monitor" in json.dumps(items[-1]), items


async def test_a_stream_whose_task_fails_in_a_nursery_sends_the_typed_error() -> None:
    @trio.as_safe_channel
    async def items() -> AsyncGenerator[dict[str, Any], None]:
        yield {"first": 1}
        async with trio.open_nursery() as nursery:
            async def fail() -> None:
                raise UnavailableError("the store is gone", hint="retry")
            nursery.start_soon(fail)
            await trio.sleep_forever()

    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))

    with trio.fail_after(5):
        await ChannelStream(items).stream_response(send)
    lines = [json.loads(line) for chunk in sent for line in chunk.splitlines() if line]
    assert lines[0] == {"first": 1}
    assert lines[-1]["error"]["message"] == "the store is gone", lines


class ExitsWhileFollowed:
    """A runtime whose container exits while its lines are still on their way up."""

    async def logs(self, cid: str, follow: bool = False) -> AsyncIterator[LogRecord]:
        for n in range(3):
            yield LogRecord(time=datetime(2026, 1, 1, second=n), stream="stdout", line=f"line {n}")
        if follow:
            await trio.sleep_forever()  # following: nothing more is written

    async def wait(self, cid: str) -> ExitStatus:
        await trio.sleep(0.002)
        return ExitStatus(code=3, signal=None)


async def test_an_exit_while_the_client_is_slow_still_ends_with_the_exit() -> None:
    """The exit ends the following; it used to cancel a nursery the follower yielded
    from, so when it landed while the line before was still being handed up (a client
    reading slower than the container wrote), trio's nursery stack was corrupted and
    the stream ended with neither exit nor error: `stackd run` said "the daemon ended
    the stream before the container exited" (about 1 run in 60 of a two-line command)."""
    # The client is slower than the container: it exits while a line is on its way up.
    items = await streamed(ExitsWhileFollowed(), client_pace=0.02)
    assert items == [{"started": {"id": "c1", "name": "c1"}},
                     *({"stream": "stdout", "line": f"line {n}"} for n in range(3)),
                     {"exit": {"code": 3, "signal": None, "oom_killed": False}}], items
