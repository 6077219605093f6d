"""The grammars of options that several commands share, checked without loading anything heavy.

Every command parses ``--layer``, ``-b/--bidx``, ``--bbox``, ``--shard`` and ``--threshold`` with these
functions, so an option means the same everywhere and a typo fails before torch is imported.

Layers: ``a+b`` averages the maps of several layers into one; repeating ``--layer`` gives one map
per layer spec (explain writes a band per method and layer, evaluate compares them).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from segxai_cli.errors import UsageError

DEFAULT_LAYER = "decoder.last"


def parse_layers(values: Union[str, Sequence[str], None], default: str = DEFAULT_LAYER) -> list[str]:
    """``--layer`` values → layer specs; each spec is one map (``a+b`` = the average of a and b)."""
    if values is None or (not isinstance(values, str) and not list(values)):
        values = [default]
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values:
        spec = str(v).strip()
        parts = [p.strip() for p in spec.split("+")]
        if not spec or any(not p or any(c.isspace() for c in p) for p in parts):
            raise UsageError(f"--layer {v!r}: expected a module path or alias, or several joined with '+' (e.g. decoder.2+decoder.3)")
        out.append("+".join(parts))
    return list(dict.fromkeys(out))


def layer_names(spec: str) -> list[str]:
    return spec.split("+")


def parse_bands(value: Union[str, Sequence[int], None]) -> Optional[list[int]]:
    """``-b 1,2,3`` (1-based, as GDAL and rio) → [1, 2, 3]; None keeps the model's bands."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",")]
        try:
            bands = [int(p) for p in parts if p]
        except ValueError:
            raise UsageError(f"-b/--bidx {value!r}: expected comma-separated band numbers, e.g. 1,2,3") from None
        if not bands or any(not p for p in parts):
            raise UsageError(f"-b/--bidx {value!r}: expected comma-separated band numbers, e.g. 1,2,3")
    else:
        bands = [int(b) for b in value]
        if not bands:
            raise UsageError("-b/--bidx: no band given")
    bad = [b for b in bands if b < 1]
    if bad:
        raise UsageError(f"-b/--bidx {bad[0]}: bands are numbered from 1 (as in GDAL and rio)")
    return bands


def parse_band_selection(value: Union[str, Sequence[Union[int, str]], None]) -> Optional[list[Union[int, str]]]:
    """``-b 1,2,3`` or ``-b red,green,blue`` (band names: STAC ``eo:bands`` common names, band
    descriptions or colour interpretations, resolved per scene) → numbers or names."""
    if value is None:
        return None
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else [str(v) for v in value])]
    if parts and all(p.lstrip("-").isdigit() for p in parts if p):
        return parse_bands(value)
    if not parts or any(not re.fullmatch(r"[A-Za-z][\w.-]*", p) for p in parts):
        raise UsageError(f"-b/--bidx {value!r}: expected band numbers (1,2,3) or band names (red,green,blue)")
    return parts


def parse_names(value: Union[str, Sequence[str], None], option: str) -> Optional[list[str]]:
    """A comma-separated list of names (``--assets B04,B03,B02``), each non-empty and without spaces."""
    if value is None:
        return None
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value)]
    if not parts or any(not p or any(c.isspace() for c in p) for p in parts):
        raise UsageError(f"{option} {value!r}: expected comma-separated names, e.g. B04,B03,B02")
    return parts


def parse_bbox(value: Union[str, Sequence[float], None]) -> Optional[tuple[float, float, float, float]]:
    """``minx,miny,maxx,maxy`` → four floats (minx < maxx, miny < maxy)."""
    if value is None:
        return None
    try:
        nums = [float(v) for v in (value.replace(" ", "").split(",") if isinstance(value, str) else value)]
    except ValueError:
        raise UsageError(f"--bbox {value!r}: expected four numbers minx,miny,maxx,maxy") from None
    if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
        raise UsageError(f"--bbox {value!r}: expected four numbers minx,miny,maxx,maxy")
    x0, y0, x1, y1 = nums
    if not (x1 > x0 and y1 > y0):
        raise UsageError(f"--bbox {value!r}: need minx < maxx and miny < maxy")
    return (x0, y0, x1, y1)


def parse_shard(spec: Union[str, tuple, None], env: Optional[Mapping[str, str]] = None) -> Optional[tuple[int, int]]:
    """``"K/N"`` (1-based: ``1/4`` … ``4/4``) → (K, N); ``"auto"``: the job array's (see :func:`scheduler_shard`)."""
    if spec is None:
        return None
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return scheduler_shard(os.environ if env is None else env)
    if isinstance(spec, tuple):
        k, n = spec
    else:
        try:
            k, n = (int(v) for v in str(spec).split("/"))
        except ValueError:
            raise UsageError(f"--shard {spec!r}: expected K/N, e.g. 1/4 (K from 1 to N)") from None
    if not (n >= 1 and 1 <= k <= n):
        raise UsageError(f"--shard {k}/{n}: K must be between 1 and N")
    return int(k), int(n)


SHARD_COUNT_VAR = "SEGXAI_SHARD_COUNT"  # the count where the scheduler gives only an index (Kubernetes)
SCHEDULER_VARS = "SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX"


def scheduler_shard(env: Mapping[str, str]) -> tuple[int, int]:
    """``--shard auto``: this task's (K, N) from the job-array variables of Slurm, Kubernetes or AWS Batch.

    Slurm numbers its tasks from ``SLURM_ARRAY_TASK_MIN`` in steps of ``SLURM_ARRAY_TASK_STEP`` (any
    ``--array=a-b[:s]``); a Kubernetes Indexed Job gives only ``JOB_COMPLETION_INDEX`` (0-based), so its
    count comes from ``SEGXAI_SHARD_COUNT`` (set it to the Job's ``completions``); AWS Batch gives
    ``AWS_BATCH_JOB_ARRAY_INDEX`` (0-based) and ``AWS_BATCH_JOB_ARRAY_SIZE``.
    """
    def num(name: str) -> Optional[int]:
        value = env.get(name)
        if value is None or not str(value).strip():
            return None
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"--shard auto: {name}={value!r} is not a number") from None

    if num("SLURM_ARRAY_TASK_ID") is not None:
        tid, lo, hi, count = (num(f"SLURM_ARRAY_TASK_{k}") for k in ("ID", "MIN", "MAX", "COUNT"))
        step = num("SLURM_ARRAY_TASK_STEP") or 1
        lo = 0 if lo is None else lo
        count = count if count is not None else (None if hi is None else (hi - lo) // step + 1)
        if count is None:
            raise UsageError("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT")
        if (tid - lo) % step or hi is not None and (hi - lo) // step + 1 != count:
            raise UsageError(f"--shard auto: Slurm array task {tid} is not on a regular --array=a-b[:step] "
                             "(use such an array, or --shard K/N)")
        return parse_shard(((tid - lo) // step + 1, count))
    for index_var, count_var in (("JOB_COMPLETION_INDEX", SHARD_COUNT_VAR),
                                 ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE")):
        index = num(index_var)
        if index is not None:
            count = num(count_var) or num(SHARD_COUNT_VAR)
            if count is None:
                raise UsageError(f"--shard auto: {index_var} is set but not {count_var} "
                                 "(set it to the number of tasks in the job)")
            return parse_shard((index + 1, count))
    raise UsageError(f"--shard auto: not in a job array (none of {SCHEDULER_VARS} is set); give --shard K/N")


def parse_devices(spec: Union[str, Sequence[str], None]) -> Union[None, str, list[str]]:
    """``--devices cuda:0,cuda:1`` → ``["cuda:0", "cuda:1"]``; ``all`` → ``"all"`` (every GPU, resolved later)."""
    if spec is None:
        return None
    items = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    if items == ["all"]:
        return "all"
    bad = [p for p in items if not re.fullmatch(r"cpu|cuda:\d+", p)]
    if bad or not items:
        raise UsageError(f"--devices {spec!r}: expected all, or devices like cuda:0,cuda:1 (or cpu)")
    if len(set(items)) != len(items):
        raise UsageError(f"--devices {spec!r}: a device is listed twice")
    return items


RAY_ADDRESS = re.compile(r"(ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}")


def parse_ray_address(spec: Optional[str]) -> Optional[str]:
    """``--ray local`` (a private cluster on this machine, loopback only), ``auto`` (the cluster of
    ``RAY_ADDRESS`` or ``ray start`` here), or ``HOST:PORT`` / ``ray://HOST:PORT``."""
    if spec is None:
        return None
    value = str(spec).strip()
    if value.lower() in ("local", "auto"):
        return value.lower()
    if not RAY_ADDRESS.fullmatch(value):
        raise UsageError(f"--ray {spec!r}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    return value


def parse_thresholds(values: Union[str, Sequence[str], None]) -> Optional[list[float]]:
    """``--threshold`` values: numbers, comma lists, or ranges ``start:stop:step`` (stop included), in [0, 1]."""
    if values is None:
        return None
    if isinstance(values, (str, float, int)):
        values = [values]
    out: list[float] = []
    for v in values:
        for part in str(v).replace(" ", "").split(","):
            if not part:
                continue
            try:
                if ":" in part:
                    a, b, *s = (float(x) for x in part.split(":"))
                    step = s[0] if s else 0.1
                    if step <= 0 or len(s) > 1:
                        raise ValueError
                    n = int(round((b - a) / step))
                    out.extend(round(a + i * step, 6) for i in range(n + 1))
                else:
                    out.append(float(part))
            except ValueError:
                raise UsageError(f"--threshold {v!r}: expected numbers in [0, 1], e.g. 0.5, 0.1,0.2 or 0.1:0.5:0.1") from None
    for t in out:
        if not 0.0 <= t <= 1.0 or math.isnan(t):
            raise UsageError(f"--threshold {t:g} is outside [0, 1] (saliency maps are min-max normalised to [0, 1])")
    return out or None
