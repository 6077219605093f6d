"""Long-lived workers that each load a model once and then run tasks, with retries when one dies.

A :class:`WorkerPool` starts one worker per :class:`Slot` (a device and the threads it may use),
runs ``setup(device)`` in each — the model is loaded there, once — and then hands out
:class:`Task`\\ s, one at a time per worker, in the order they were submitted. :meth:`WorkerPool.results`
yields a :class:`Done` as each task finishes. A worker that dies (killed, out of memory, its machine
gone) is replaced, and its task goes back to the front of the queue for the next free worker — up to
``max_attempts`` times, then the task is reported as failed with :class:`WorkerLost`.

Tasks are plain picklable calls ``fn(state, *args, attempt=n)`` of module-level functions, so the
same caller code runs in this process (:class:`InlinePool`), in worker processes
(:mod:`segxai_cli.workers.processes`) or on Ray actors (:mod:`segxai_cli.workers.ray`).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

from segxai_cli.errors import SegxaiError

log = logging.getLogger("segxai")

Setup = Callable[[str], Any]  # setup(device) -> the worker's state (e.g. a loaded model)
Describe = Callable[[Any], Any]  # describe(state) -> what the driver needs to know of it (picklable)


class WorkerLost(SegxaiError):
    """A task's worker died every time the task was tried (killed, out of memory, machine lost)."""


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its torch device, its intra-op threads, and (Ray) what it reserves."""

    device: str = "cpu"
    threads: int = 1
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Task:
    key: Any  # the caller's name for it
    fn: Callable[..., Any]  # module-level, picklable: fn(state, *args, attempt=n)
    args: tuple = ()
    attempt: int = 1


@dataclass
class Done:
    task: Task
    value: Any = None
    error: Optional[BaseException] = None  # raised by the task (or WorkerLost)
    worker: str = ""  # where it ran, for logs


LOST = object()  # a worker's outcome when it died with the task


class WorkerState:
    """What lives in a worker: the state built once by ``setup``; runs tasks on it."""

    def __init__(self, setup: Setup, slot: Slot) -> None:
        self.setup, self.slot, self.state = setup, slot, None

    def ready(self, describe: Optional[Describe]) -> tuple[str, Any]:
        """Build the state (threads pinned first); → ("ok", describe(state)) or ("error", exc)."""
        try:
            pin_threads(self.slot.threads)
            self.state = self.setup(self.slot.device)
            return "ok", describe(self.state) if describe else None
        except BaseException as exc:  # noqa: BLE001 - handed to the driver, which raises it
            return "error", portable(exc)

    def placement(self) -> dict[str, Any]:
        """Where this worker landed (its host, process and the GPUs it sees), for the driver's log."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def call(self, task: Task) -> tuple[str, Any]:
        try:
            if self.state is None:
                raise SegxaiError("this worker could not load the model")
            return "ok", task.fn(self.state, *task.args, attempt=task.attempt)
        except Exception as exc:  # noqa: BLE001 - handed to the driver
            return "error", portable(exc)


def pin_threads(threads: int) -> None:
    """Intra-op threads of torch (and of OpenMP/BLAS started later) in this worker."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(max(1, int(threads)))


def portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling (SegxaiErrors do), else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class WorkerPool:
    """Runs tasks on workers (see the module docstring); subclasses say how a worker is started,
    handed a task, waited on and replaced."""

    name = "pool"
    max_attempts = 3
    remote = True  # tasks run in other processes (their log lines do not reach this one)

    def __init__(self, slots: Sequence[Slot]) -> None:
        if not slots:
            raise SegxaiError("no worker to run on")
        self.slots = list(slots)
        self.pending: deque[Task] = deque()
        self.busy: dict[int, Task] = {}
        self.idle: list[int] = []
        self.restarts = 0
        self.unusable: set[int] = set()  # workers that never started
        self.on_dispatch: Optional[Callable[[Task], None]] = None

    # ----------------------------------------------------------------- what subclasses implement
    def _start(self, setup: Setup, describe: Optional[Describe]) -> list[Any]:  # pragma: no cover
        """Start a worker per slot and wait until each is set up; → describe() of each."""
        raise NotImplementedError

    def _send(self, wid: int, task: Task) -> None:  # pragma: no cover
        raise NotImplementedError

    def _wait(self) -> tuple[int, Any]:  # pragma: no cover
        """Block until a busy worker finishes; → (worker id, ("ok"|"error", value) or LOST)."""
        raise NotImplementedError

    def _replace(self, wid: int) -> bool:  # pragma: no cover
        """Start a fresh worker in place of a dead one; False if it cannot be."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop every worker (a task still running is interrupted)."""

    def where(self, wid: int) -> str:
        return f"worker {wid} ({self.slots[wid].device})"

    # ----------------------------------------------------------------- the common logic
    def start(self, setup: Setup, describe: Optional[Describe] = None) -> list[Any]:
        """Start the workers; a setup that fails in a worker (a bad option, a missing model) raises here."""
        infos = self._start(setup, describe)
        self.idle = [w for w in range(len(self.slots)) if w not in self.unusable]
        return infos

    def submit(self, task: Task) -> None:
        self.pending.append(task)

    def results(self) -> Iterator[Done]:
        """Run everything submitted (also what is submitted while iterating); yield each as it finishes."""
        while self.pending or self.busy:
            self._dispatch()
            if not self.busy:  # tasks left, no worker left
                while self.pending:
                    task = self.pending.popleft()
                    yield Done(task, error=WorkerLost("no worker left to run it (every worker died)"))
                return
            wid, outcome = self._wait()
            task = self.busy.pop(wid)
            if outcome is LOST:
                retry = self._lost(wid, task)
                if retry is None:
                    yield Done(task, error=WorkerLost(
                        f"its worker died {task.attempt} times while running it (killed, or out of memory?)"),
                        worker=self.where(wid))
                continue
            self.idle.append(wid)
            status, value = outcome
            yield Done(task, value=value, worker=self.where(wid)) if status == "ok" else \
                Done(task, error=value, worker=self.where(wid))

    def _dispatch(self) -> None:
        while self.pending and self.idle:
            wid, task = self.idle.pop(0), self.pending.popleft()
            self.busy[wid] = task
            if self.on_dispatch is not None:
                self.on_dispatch(task)
            self._send(wid, task)

    def _lost(self, wid: int, task: Task) -> Optional[Task]:
        """A worker died with ``task``: replace it and queue the task again (first), or give up on it."""
        log.warning("%s died while running %s (attempt %d)", self.where(wid), task.key, task.attempt)
        self.restarts += 1
        if self.restarts <= self.max_attempts * len(self.slots) and self._replace(wid):
            self.idle.append(wid)  # after the other idle workers: a retry goes elsewhere first
        if task.attempt >= self.max_attempts:
            return None
        retry = replace(task, attempt=task.attempt + 1)
        self.pending.appendleft(retry)
        return retry


class InlinePool(WorkerPool):
    """One worker: this process. For tests and for runs that need the task protocol without workers."""

    name = "inline"
    remote = False

    def __init__(self, slots: Sequence[Slot] = (Slot(),)) -> None:
        super().__init__(slots[:1])
        self.worker: Optional[WorkerState] = None
        self.outcome: Any = None

    def _start(self, setup: Setup, describe: Optional[Describe]) -> list[Any]:
        self.worker = WorkerState(setup, self.slots[0])
        self.worker.state = setup(self.slots[0].device)  # errors raise as they are
        return [describe(self.worker.state) if describe else None]

    def _send(self, wid: int, task: Task) -> None:
        self.outcome = self.worker.call(task)

    def _wait(self) -> tuple[int, Any]:
        return 0, self.outcome

    def _replace(self, wid: int) -> bool:  # pragma: no cover - this process does not die and go on
        return False


def raise_setup_errors(outcomes: Sequence[tuple[str, Any]]) -> list[Any]:
    """The ready() outcomes of every worker → their infos; the first setup error is raised as it was."""
    for status, value in outcomes:
        if status == "error":
            raise value
    return [value for _, value in outcomes]
