"""Workers as Ray actors: one per GPU (or per CPU slot), on this machine or on a cluster.

Ray (the optional extra ``segxai[ray]``) places each actor by the resources it reserves
(``num_gpus=1`` → Ray sets ``CUDA_VISIBLE_DEVICES`` for it), runs the same code on a laptop and a
cluster, and tells us when an actor dies. Each actor loads the model once; tasks are actor calls,
one at a time per actor, so a dead actor's task is known and goes back to the queue for the next
free actor while a fresh actor takes the dead one's place.

Security: Ray runs whatever code reaches it. ``--ray local`` starts a private cluster whose every
service listens on 127.0.0.1 only (checked after start: a non-loopback node address stops the run),
with Ray's token authentication on (``RAY_AUTH_MODE=token`` unless set otherwise); nothing here ever starts a
cluster on another address. Real clusters are started by their operators (``ray start``, KubeRay)
with token authentication (``RAY_AUTH_MODE=token``): see docs/scale.md.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, Optional

from segxai_cli.errors import SegxaiError, UsageError
from segxai_cli.workers.pool import LOST, Describe, Setup, Slot, Task, WorkerPool, WorkerState, raise_setup_errors

log = logging.getLogger("segxai")

EXTRA_HINT = "Ray is not installed: pip install 'segxai[ray]'"
READY_TIMEOUT_S = 900.0  # workers that cannot be placed or set up by then are given up
FORWARDED_ENV = ("SEGXAI_FAULT", "SEGXAI_FAULT_ONCE")  # the fault suite reaches workers too


def require_ray() -> None:
    """Fail with the extra's name when Ray is missing (cheap: nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"--ray: {EXTRA_HINT}")


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "localhost")


def start_local(num_cpus: Optional[int] = None, num_gpus: Optional[int] = None,
                cuda_devices: Optional[Sequence[int]] = None) -> None:
    """A private Ray cluster on this machine that listens on 127.0.0.1 only.

    Ray picks the node's address from the network unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is
    off (the switch Ray itself uses to stay on loopback on laptops); it is read when Ray is imported,
    so it is also set on Ray's constants in case Ray was imported earlier in this process.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" not in sys.modules:  # Ray reads the mode when imported (a Ray app that imported it keeps its own)
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray's default for new local clusters since 2.60
    if cuda_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in cuda_devices)
    # The workers of a private cluster run this interpreter. Ray's `uv run` hook would otherwise start
    # them with `uv run` in a copy of the working directory, a new environment without Ray in it.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    node = ray.util.get_node_ip_address()
    if not is_loopback(node):
        ray.shutdown()
        raise SegxaiError(f"--ray local: Ray chose the network address {node}; refusing to run a cluster "
                          "reachable from the network (start one yourself with token authentication and use --ray ADDRESS)")


def connect(address: str, cuda_devices: Optional[Sequence[int]] = None) -> bool:
    """Join (``auto``, ``HOST:PORT``) or start (``local``) a cluster; True when this call started it."""
    require_ray()
    import ray

    if ray.is_initialized():  # a Ray application calling segxai: use its cluster
        return False
    if address == "local":
        start_local(num_gpus=len(cuda_devices) if cuda_devices is not None else None, cuda_devices=cuda_devices)
        return True
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
        raise SegxaiError(f"--ray {address}: cannot connect to a Ray cluster: {str(exc).splitlines()[0]}{hint}") from None
    return False


def cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())


class RayPool(WorkerPool):
    """One Ray actor per slot (``num_cpus``/``num_gpus`` from the slot)."""

    name = "ray"

    def __init__(self, slots: Sequence[Slot], owns_cluster: bool = False) -> None:
        super().__init__(slots)
        self.owns_cluster = owns_cluster
        self.actors: list[Any] = [None] * len(self.slots)
        self.refs: dict[Any, int] = {}  # in-flight call → worker
        self.placement: dict[int, dict] = {}
        self.setup: Optional[Setup] = None
        self.describe: Optional[Describe] = None

    def _actor(self, wid: int):
        import ray

        slot = self.slots[wid]
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env["OMP_NUM_THREADS"] = str(slot.threads)
        cls = ray.remote(WorkerState).options(num_cpus=slot.cpus, num_gpus=slot.gpus, max_restarts=0,
                                              max_task_retries=0, runtime_env={"env_vars": env})
        self.actors[wid] = cls.remote(self.setup, slot)
        return self.actors[wid].ready.remote(self.describe)

    def _start(self, setup: Setup, describe: Optional[Describe]) -> list[Any]:
        import ray

        self.setup, self.describe = setup, describe
        self._check_resources()
        pending = {self._actor(wid): wid for wid in range(len(self.slots))}
        done, late = ray.wait(list(pending), num_returns=len(pending), timeout=READY_TIMEOUT_S)
        if not done:
            self.close()
            raise SegxaiError(f"no Ray worker started within {READY_TIMEOUT_S:.0f} s (does the cluster have the resources?)")
        outcomes, ready = [], []
        for ref in done:
            try:
                outcomes.append(ray.get(ref))
                ready.append(pending[ref])
            except ray.exceptions.RayError as exc:
                outcomes.append(("error", SegxaiError(f"a Ray worker died while loading the model: {exc}")))
        for ref in late:
            log.warning("%s could not be placed or set up in time; going on without it", self.where(pending[ref]))
            ray.kill(self.actors[pending[ref]])
        try:
            infos = raise_setup_errors(outcomes)
        except BaseException:
            self.close()
            raise
        self.unusable = set(range(len(self.slots))) - set(ready)
        self.placement = dict(zip(ready, ray.get([self.actors[w].placement.remote() for w in ready])))
        for wid, where in sorted(self.placement.items()):
            log.info("%s on %s (pid %s, GPUs %s)", self.where(wid), where["host"], where["pid"], where["gpus"])
        return infos

    def _check_resources(self) -> None:
        have = cluster_resources()
        for key, need in (("CPU", sum(s.cpus for s in self.slots)), ("GPU", sum(s.gpus for s in self.slots))):
            if need > have.get(key, 0.0) + 1e-9:
                raise UsageError(f"the Ray cluster has {have.get(key, 0.0):g} {key}(s); {len(self.slots)} worker(s) "
                                 f"need {need:g} (ask for fewer with --workers / --devices)")

    def _send(self, wid: int, task: Task) -> None:
        self.refs[self.actors[wid].call.remote(task)] = wid

    def _wait(self) -> tuple[int, Any]:
        import ray

        (ref,), _ = ray.wait(list(self.refs), num_returns=1)
        wid = self.refs.pop(ref)
        try:
            return wid, ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError, ray.exceptions.LocalRayletDiedError):
            return wid, LOST

    def _replace(self, wid: int) -> bool:
        import ray

        try:
            ray.kill(self.actors[wid])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actor(wid)  # its calls queue behind its set-up
        return True

    def where(self, wid: int) -> str:
        slot = self.slots[wid]
        return f"Ray worker {wid} ({'GPU' if slot.gpus else f'{slot.cpus:g} CPU'})"

    def close(self) -> None:
        try:
            import ray

            for actor in self.actors:
                if actor is not None:
                    ray.kill(actor)
        except Exception:  # noqa: BLE001 - closing after a failure: nothing more to do
            pass
        self.actors = [None] * len(self.slots)
        self.refs.clear()
        if self.owns_cluster:
            import ray

            ray.shutdown()
