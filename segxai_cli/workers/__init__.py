"""Where the work of a run goes: worker processes on this machine, or Ray actors on a cluster.

:func:`make_pool` turns ``--ray``, ``--devices`` and ``--workers`` into a started-able
:class:`~segxai_cli.workers.pool.WorkerPool` (or None: everything in this process). The pools know
nothing of scenes or models: explain and evaluate hand them a ``setup(device)`` that loads the model
once per worker and tasks to run on it (:mod:`segxai_cli.workers.pool`).

Nothing here imports torch or Ray at import time; the option grammars are in :mod:`segxai_cli.options`.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from segxai_cli.errors import SegxaiError, UsageError
from segxai_cli.options import parse_devices, parse_ray_address
from segxai_cli.workers.pool import Done, InlinePool, Slot, Task, WorkerLost, WorkerPool

__all__ = ["Done", "InlinePool", "Slot", "Task", "WorkerLost", "WorkerPool", "check_device_with_pool", "check_pool_options", "make_pool"]

GPU_THREADS = 2  # CPU threads of a GPU worker (reading, blending on the host side)


def check_device_with_pool(device: str, devices) -> None:
    """``--device`` names the one device of a one-process run; with workers, ``--devices`` does."""
    if device != "auto" and not (device == "cpu" and devices is None):
        raise UsageError("--device is for one process; with --ray, --devices or --workers give --devices")


def check_pool_options(ray: Optional[str], devices: Union[str, list, None], workers: Optional[int]):
    """Check ``--ray``/``--devices``/``--workers`` without importing anything heavy; → parsed values."""
    address = parse_ray_address(ray)
    devs = parse_devices(devices) if devices is not None and not isinstance(devices, list) else devices
    if workers is not None and int(workers) < 1:
        raise UsageError(f"--workers {workers}: must be at least 1")
    if workers is not None and devs is not None:
        raise UsageError("--workers counts CPU workers; with --devices there is one worker per device (give one of them)")
    if address is not None:
        from segxai_cli.workers.ray import require_ray

        require_ray()
        if isinstance(devs, list) and address != "local" and any(d.startswith("cuda") for d in devs):
            raise UsageError("--devices cuda:N names this machine's GPUs; on a Ray cluster use --devices all "
                             "(a worker per GPU of the cluster) or --workers N")
    return address, devs, (int(workers) if workers is not None else None)


def make_pool(ray: Optional[str] = None, devices: Union[str, list, None] = None,
              workers: Optional[int] = None) -> Optional[WorkerPool]:
    """The pool for the options (see the module docstring); None when none of them is given."""
    address, devs, n = check_pool_options(ray, devices, workers)
    if address is not None:
        return _ray_pool(address, devs, n)
    if devs is None and n is None:
        return None
    from segxai_cli.workers.processes import ProcessPool

    return ProcessPool(_local_slots(devs, n))


def _cpu_slots(n: int, cpus: int) -> list[Slot]:
    threads = max(1, cpus // n)
    return [Slot("cpu", threads, cpus=threads) for _ in range(n)]


def _local_slots(devs: Union[str, list, None], n: Optional[int]) -> list[Slot]:
    cpus = os.cpu_count() or 1
    if n is not None:
        return _cpu_slots(n, cpus)
    if devs == "all":
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise SegxaiError("--devices all: no CUDA device on this machine (use --workers N for CPU workers)")
        devs = [f"cuda:{i}" for i in range(count)]
    if any(d.startswith("cuda") for d in devs):
        from segxai_cli.device import resolve_device

        for d in devs:
            if d.startswith("cuda"):
                resolve_device(d)  # present and usable, else one clear error now
    n_cpu = sum(d == "cpu" for d in devs)
    cpu_threads = max(1, cpus // max(1, n_cpu))
    return [Slot(d, GPU_THREADS if d.startswith("cuda") else cpu_threads) for d in devs]


def _ray_pool(address: str, devs: Union[str, list, None], n: Optional[int]) -> WorkerPool:
    from segxai_cli.workers.ray import RayPool, cluster_resources, connect

    cuda = [int(d.split(":")[1]) for d in devs if d.startswith("cuda")] if isinstance(devs, list) else None
    owns = connect(address, cuda_devices=cuda or None)
    try:
        have = cluster_resources()
        cpus, gpus = int(have.get("CPU", 1)), int(have.get("GPU", 0))
        if isinstance(devs, list):
            n_cpu = sum(d == "cpu" for d in devs)
            slots = [Slot("cuda", GPU_THREADS, 1.0, 1.0) for _ in cuda] + (_cpu_slots(n_cpu, cpus) if n_cpu else [])
        elif devs == "all" or (n is None and gpus):
            if not gpus:
                raise SegxaiError("--devices all: the Ray cluster has no GPU (use --workers N for CPU workers)")
            slots = [Slot("cuda", GPU_THREADS, 1.0, 1.0) for _ in range(gpus)]
        else:
            slots = _cpu_slots(n or max(1, cpus // 2), cpus)
        return RayPool(slots, owns_cluster=owns)
    except BaseException:
        if owns:
            import ray

            ray.shutdown()
        raise
