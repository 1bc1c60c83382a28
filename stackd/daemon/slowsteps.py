"""An opt-in trio instrument that records every task step holding the loop too long.

A step is what a task runs between two checkpoints; while it runs, no other task of
the daemon (API requests, watchers, the controller) can. Set STACKD_SLOW_STEPS to a
file and the daemon appends one JSON line per step longer than STACKD_SLOW_STEP_MS
(default 50): the task's name, its wall time, its CPU time (time.thread_time, which
other processes' load does not stretch) and where it was: the trio thread's stack as
a sampler thread saw it once the step had run past the threshold.
tests/adversarial/test_loop_blocking.py drives the daemon under load with it and
fails on any slow step.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from types import FrameType
from typing import IO

import trio

ENV_FILE = "STACKD_SLOW_STEPS"
ENV_MS = "STACKD_SLOW_STEP_MS"
SAMPLE_EVERY = 0.01


class SlowSteps(trio.abc.Instrument):
    def __init__(self, out: IO[str], threshold: float) -> None:
        self.out = out
        self.threshold = threshold
        self._wall = 0.0
        self._cpu = 0.0
        self._step = 0  # bumped at each step's start and end, read by the sampler
        self._where: list[str] = []
        self._thread = threading.get_ident()
        threading.Thread(target=self._sample, name="slowsteps", daemon=True).start()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._where = []
        self._wall = time.perf_counter()
        self._cpu = time.thread_time()
        self._step += 1  # last: the sampler reads the step, then its start

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.thread_time() - self._cpu
        self._step += 1
        if wall > self.threshold or cpu > self.threshold:
            # Written after the measurement, so the write is not counted; a slow step
            # is rare, and a line is small.
            self.out.write(json.dumps({"task": task.name, "wall": round(wall, 4),
                                       "cpu": round(cpu, 4), "where": self._where}) + "\n")
            self.out.flush()

    def _sample(self) -> None:
        """Once a step has run past the threshold, note the trio thread's stack (the
        frames of stackd and of the libraries it called): the first look, taken while
        the step is still in what makes it slow (a later one may find it returning)."""
        while True:
            time.sleep(SAMPLE_EVERY)
            step = self._step
            if (step % 2 == 0 or self._where
                    or time.perf_counter() - self._wall < self.threshold):
                continue
            frame = sys._current_frames().get(self._thread)
            if frame is None:
                continue
            where: list[str] = []
            walk: FrameType | None = frame
            while walk is not None and len(where) < 40:  # no source lookup: cheap
                where.append(f"{walk.f_code.co_filename}:{walk.f_lineno} "
                             f"{walk.f_code.co_name}")
                walk = walk.f_back
            where.reverse()
            if self._step == step:  # still the same step
                self._where = where


def from_env() -> list[trio.abc.Instrument]:
    """The instruments the daemon's trio.run gets: SlowSteps when STACKD_SLOW_STEPS is set."""
    path = os.environ.get(ENV_FILE)
    if not path:
        return []
    threshold = float(os.environ.get(ENV_MS) or "50") / 1000
    return [SlowSteps(open(path, "a", encoding="utf-8"), threshold)]  # kept open: the daemon's life
