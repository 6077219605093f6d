"""One worker process per device (or CPU slot) on this machine — plain multiprocessing, no Ray.

Processes are started with ``spawn``: GDAL's handles and CUDA's context do not survive ``fork``.
Each worker has its own task queue (so the driver knows which task a dead worker had) and all of
them answer on one result queue. A worker that dies is noticed by polling ``is_alive`` while
waiting, replaced by a fresh process, and its task is retried (see :class:`~.pool.WorkerPool`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import signal
import warnings
from collections.abc import Sequence
from typing import Any, Optional

from segxai_cli.errors import SegxaiError
from segxai_cli.workers.pool import LOST, Describe, Setup, Slot, Task, WorkerPool, WorkerState, raise_setup_errors

POLL_S = 0.2
STOP_S = 20.0  # a worker interrupted at close has this long to remove its temp files


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _main(wid: int, gen: int, setup: Setup, describe: Optional[Describe], slot: Slot, tasks, results) -> None:
    """A worker process: set up once, then run tasks until told to stop (``None``)."""
    signal.signal(signal.SIGTERM, _interrupt)  # clean-up paths run (temp files removed)
    logging.getLogger("segxai").setLevel(logging.CRITICAL)  # the driver logs what the results say
    warnings.simplefilter("ignore")
    worker = WorkerState(setup, slot)
    ready = worker.ready(describe)
    results.put((wid, gen, "ready", ready))
    if ready[0] != "ok":
        return
    try:
        while (task := tasks.get()) is not None:
            results.put((wid, gen, "done", worker.call(task)))
    except KeyboardInterrupt:
        pass


class ProcessPool(WorkerPool):
    name = "processes"

    def __init__(self, slots: Sequence[Slot]) -> None:
        super().__init__(slots)
        self.ctx = mp.get_context("spawn")
        self.results_q = self.ctx.Queue()
        self.procs: list[Any] = [None] * len(self.slots)
        self.queues: list[Any] = [None] * len(self.slots)
        self.gen = [0] * len(self.slots)
        self.setup: Optional[Setup] = None
        self.describe: Optional[Describe] = None

    def _spawn(self, wid: int) -> None:
        self.gen[wid] += 1
        self.queues[wid] = self.ctx.Queue()
        p = self.ctx.Process(target=_main, name=f"segxai-worker-{wid}", daemon=True,
                             args=(wid, self.gen[wid], self.setup, self.describe, self.slots[wid],
                                   self.queues[wid], self.results_q))
        p.start()
        self.procs[wid] = p

    def _start(self, setup: Setup, describe: Optional[Describe]) -> list[Any]:
        self.setup, self.describe = setup, describe
        for wid in range(len(self.slots)):
            self._spawn(wid)
        ready: dict[int, tuple[str, Any]] = {}
        while len(ready) < len(self.slots):
            try:
                wid, gen, kind, outcome = self.results_q.get(timeout=POLL_S)
            except queue.Empty:
                dead = [w for w, p in enumerate(self.procs) if w not in ready and not p.is_alive()]
                if dead:
                    code = self.procs[dead[0]].exitcode
                    self.close()
                    raise SegxaiError(f"{self.where(dead[0])} died while loading the model (exit code {code})")
                continue
            ready[wid] = outcome
        try:
            return raise_setup_errors([ready[w] for w in range(len(self.slots))])
        except BaseException:
            self.close()
            raise

    def _send(self, wid: int, task: Task) -> None:
        self.queues[wid].put(task)

    def _wait(self) -> tuple[int, Any]:
        while True:
            try:
                wid, gen, kind, outcome = self.results_q.get(timeout=POLL_S)
            except queue.Empty:
                for wid in self.busy:
                    if not self.procs[wid].is_alive():
                        return wid, LOST
                continue
            if gen == self.gen[wid] and kind == "done":
                return wid, outcome
            if kind == "ready" and outcome[0] != "ok":  # a replacement that could not start
                logging.getLogger("segxai").warning("%s could not start again: %s", self.where(wid), outcome[1])

    def _replace(self, wid: int) -> bool:
        self.procs[wid].join(timeout=1)
        self._spawn(wid)
        return True

    def close(self) -> None:
        for wid, p in enumerate(self.procs):
            if p is not None and p.is_alive() and self.queues[wid] is not None:
                self.queues[wid].put(None)
        for p in self.procs:
            if p is None:
                continue
            p.join(timeout=0.5)
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker's clean-up runs
                p.join(timeout=STOP_S)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self.procs = [None] * len(self.slots)
