"""Scenes on worker processes of this machine: one per device (``--devices cuda:0,cuda:1`` / ``all``)
or per CPU slot (``--workers N``), each loading the model once — no Ray needed."""

from __future__ import annotations

from typing import Optional, Union

from segxai_cli.explain.executors.base import Progress
from segxai_cli.explain.executors.pool import PoolExecutor


class ProcessExecutor(PoolExecutor):
    name = "processes"

    def __init__(self, devices: Union[str, list, None] = None, workers: Optional[int] = None,
                 progress: Optional[Progress] = None, split: Union[int, str, None] = None) -> None:
        from segxai_cli.workers import check_pool_options, make_pool

        check_pool_options(None, devices, workers)
        super().__init__(lambda: make_pool(None, devices, workers), progress, split)
