"""The work queue and controller: client-go's guarantees, on trio's fake clock."""

from __future__ import annotations

import trio
import trio.testing

from stackd.daemon.controller import Controller
from stackd.daemon.events import EventBus
from stackd.daemon.metrics import Metrics
from stackd.daemon.workqueue import ExponentialBackoff, WorkQueue
from stackd.errors import SpecError, UnavailableError


async def test_a_key_is_queued_once_however_often_added() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a", "b"]:
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_adding_a_key_being_processed_defers_it_until_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first has it
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"


def test_backoff_doubles_to_a_cap_and_forget_resets() -> None:
    b = ExponentialBackoff(0.1, 1.0)
    assert [b.when("k") for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.forget("k")
    assert b.when("k") == 0.1


async def test_add_after_waits_its_time(autojump_clock: trio.testing.MockClock) -> None:
    q: WorkQueue[str] = WorkQueue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(q.run_delayed)
        t0 = trio.current_time()
        q.add_after("a", 2.5)
        assert await q.get() == "a"
        assert trio.current_time() - t0 == 2.5
        q.shut_down()


async def test_one_reconcile_at_a_time_per_key_and_failures_back_off(
        autojump_clock: trio.testing.MockClock) -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    calls: list[tuple[str, float]] = []
    failures = {"flaky": 3}

    async def reconcile(key: str) -> float | None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append((key, trio.current_time()))
        await trio.sleep(1)
        running.discard(key)
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            raise UnavailableError("not yet")
        return None

    bus = EventBus()
    c = Controller(reconcile, bus=bus, metrics=Metrics(), workers=4, resync_period=1000,
                   backoff=ExponentialBackoff(0.1, 30))
    async with trio.open_nursery() as nursery:
        await nursery.start(c.run)
        c.enqueue("flaky")
        for _ in range(5):
            c.enqueue("steady")
            await trio.sleep(0.3)
        await trio.sleep(20)
        c.shut_down()
        nursery.cancel_scope.cancel()
    assert overlaps == []
    flaky = [t for k, t in calls if k == "flaky"]
    # First run at 0 fails at 1 → retried 0.1 s later, then 0.2 s, then 0.4 s (each run 1 s).
    assert [round(t, 6) for t in flaky[:4]] == [0.0, 1.1, 2.3, 3.7]
    assert c.key_status("flaky").last_result == "ok"
    assert [e.type for e in bus.history()].count("error") == 3
    steady = [t for k, t in calls if k == "steady"]
    assert steady[:2] == [0.0, 1.0]  # adds during the run coalesce into one more run


async def test_terminal_errors_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []

    async def reconcile(key: str) -> float | None:
        calls.append(trio.current_time())
        raise SpecError("services.web.image: required")

    c = Controller(reconcile, workers=1, resync_period=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(c.run)
        c.enqueue("bad")
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert calls == [0.0]
    assert c.key_status("bad").last_result == "terminal"
    assert "services.web.image" in c.key_status("bad").last_error


async def test_an_unexpected_error_is_told_by_its_kind_not_its_python_text(
        autojump_clock: trio.testing.MockClock) -> None:
    async def reconcile(key: str) -> float | None:
        raise ValueError("1 validation error for Stack\nservices.a.labels\n  Value error, "
                         "[type=value_error, input_value={}]")

    bus = EventBus()
    c = Controller(reconcile, bus=bus, workers=1, resync_period=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(c.run)
        c.enqueue("odd")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    told = [c.key_status("odd").last_error, *(e.message for e in bus.history())]
    assert c.key_status("odd").last_error == (
        "an internal error (ValueError) in the daemon; its log (logs/daemon.log in the "
        "state root) has the details")
    assert not [t for t in told if "validation error" in t or "input_value" in t]
    assert any("reconcile failed, retrying in" in t for t in told)


async def test_requeue_after_and_resync(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[str, float]] = []

    async def reconcile(key: str) -> float | None:
        calls.append((key, trio.current_time()))
        return 5.0 if key == "waiting" else None

    c = Controller(reconcile, workers=2, resync_period=30, keys=lambda: ["kept"])
    async with trio.open_nursery() as nursery:
        await nursery.start(c.run)
        c.enqueue("waiting")
        await trio.sleep(61)
        nursery.cancel_scope.cancel()
    assert [t for k, t in calls if k == "kept"] == [0.0, 30.0, 60.0]
    assert [t for k, t in calls if k == "waiting"][:3] == [0.0, 5.0, 10.0]


async def test_bus_replays_history_then_follows() -> None:
    bus = EventBus(history=3)
    for i in range(5):
        bus.emit("apply", project="p", message=str(i))
    got = []
    async with trio.open_nursery() as nursery:
        async def follow() -> None:
            async for e in bus.subscribe(since_seq=0):
                got.append(e.message)
                if len(got) == 4:
                    nursery.cancel_scope.cancel()

        nursery.start_soon(follow)
        await trio.sleep(0)
        await trio.sleep(0)
        bus.emit("die", project="p", message="new")
    assert got == ["2", "3", "4", "new"]
