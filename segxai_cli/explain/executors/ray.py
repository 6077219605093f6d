"""Scenes on Ray actors (the extra ``segxai[ray]``): one per GPU of this machine or of a cluster
(``--devices all``), or per CPU slot (``--workers N``), each loading the model once; scenes (or
blocks of a huge scene) are tasks, and a dead actor's task is retried on another.

``--ray local`` starts a private cluster on 127.0.0.1 for this run; ``auto`` and ``HOST:PORT`` join
a running one (see :mod:`segxai_cli.workers.ray` and docs/scale.md).
"""

from __future__ import annotations

from typing import Optional, Union

from segxai_cli.explain.executors.base import Progress
from segxai_cli.explain.executors.pool import PoolExecutor


class RayExecutor(PoolExecutor):
    name = "ray"

    def __init__(self, address: str = "local", devices: Union[str, list, None] = None, workers: Optional[int] = None,
                 progress: Optional[Progress] = None, split: Union[int, str, None] = None) -> None:
        from segxai_cli.workers import check_pool_options, make_pool

        check_pool_options(address, devices, workers)  # before any cluster is started or joined
        super().__init__(lambda: make_pool(address, devices, workers), progress, split)
