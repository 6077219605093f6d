"""Ray: one private local cluster for the module (2 CPUs, 2 simulated GPUs), tiny scenes.

Checks that a run on Ray workers writes the same files as one process (arrays byte for byte), that
Ray places GPU workers by ``num_gpus``, that a worker killed mid-scene has its scene retried, that a
scene split across workers equals the whole-scene run, and that evaluate's report is byte-identical.
Skipped when the extra ``segxai[ray]`` is not installed.
"""

from __future__ import annotations

import csv
import ipaddress
import socket

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from test_scale import assert_same_outputs, leftovers  # noqa: E402

from segxai_cli.explain.executors.pool import PoolExecutor  # noqa: E402
from segxai_cli.explain.run import explain_scenes  # noqa: E402
from segxai_cli.workers.pool import Slot  # noqa: E402
from segxai_cli.workers.ray import RayPool, start_local  # noqa: E402

STEMS = ["s0", "s1", "s2"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    start_local(num_cpus=2, num_gpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three small scenes (one tall enough to split), the tiny model, and the one-process outputs."""
    import torch

    from conftest import tiny_model_info, write_geotiff
    from segxai_cli.model.checkpoint import save_checkpoint
    from segxai_cli.model.families import build_model

    d = tmp_path_factory.mktemp("ray")
    torch.manual_seed(0)
    info = tiny_model_info()
    ckpt = save_checkpoint(d / "tiny.pt", build_model(info).eval(), info)
    rng = np.random.default_rng(1)
    (d / "scenes").mkdir()
    for i, (h, w) in enumerate([(200, 120), (100, 150), (130, 90)]):
        img = (rng.random((3, h, w)) * 254 + 1).astype(np.uint8)
        img[:, 20:40, 10 * i:10 * i + 30] = 0
        write_geotiff(d / "scenes" / f"s{i}.tif", img, nodata=0)
    explain_scenes(d / "scenes", d / "one", ckpt)
    return d, ckpt


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (from /proc: no traffic is sent)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            host, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(host)
                out.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6,
                                         raw[::-1] if len(raw) == 4 else b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return out


def test_local_cluster_listens_on_loopback_only():
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    gcs = ray.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:")
    node = ray.nodes()[0]
    assert node["NodeManagerAddress"] == "127.0.0.1"
    ports = {int(gcs.rsplit(":", 1)[1])} | {v for k, v in node.items() if k.endswith("Port") and isinstance(v, int) and v > 0}
    seen = {p: listening_addresses(p) for p in ports}
    assert any(seen.values())  # the table could be read
    assert all(is_loopback(a) for addrs in seen.values() for a in addrs), seen


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # ::ffff:127.0.0.1 counts too


def test_gpu_workers_retry_a_killed_workers_scene_and_write_what_one_process_writes(data, tmp_path, monkeypatch):
    """Two workers each reserving one (simulated) GPU: Ray gives each its own. The first worker to
    reach its 2nd batch is SIGKILLed mid-scene; that scene is retried on a worker, and the outputs,
    records and CSV rows equal the one-process run's (arrays byte for byte)."""
    d, ckpt = data
    monkeypatch.setenv("SEGXAI_FAULT", "compute@2:sigkill")
    monkeypatch.setenv("SEGXAI_FAULT_ONCE", str(tmp_path / "fired"))
    pools = []

    def make_pool():
        pools.append(RayPool([Slot("cpu", 1, cpus=1, gpus=1), Slot("cpu", 1, cpus=1, gpus=1)]))
        return pools[-1]

    out = tmp_path / "out"
    run = explain_scenes(d / "scenes", out, ckpt, executor=PoolExecutor(make_pool))
    assert run.ok and run.counts()["done"] == 3
    assert sorted(p["gpus"] for p in pools[0].placement.values()) == ["0", "1"]
    assert (tmp_path / "fired").exists() and pools[0].restarts == 1
    assert_same_outputs(d / "one", out, STEMS)
    timing = ("seconds", "megapixels_per_s")
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader((f / "segxai_scenes.csv").open())]
            for f in (d / "one", out)]
    assert rows[0] == rows[1]
    assert leftovers(out) == []


def test_scene_split_across_workers_equals_the_whole_scene(data, tmp_path):
    """Through the CLI: one scene in three blocks of rows on two Ray workers."""
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    d, ckpt = data
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(d / "scenes" / "s0.tif"), "-o", str(out), "-m", str(ckpt),
                                      "--ray", "local", "--workers", "2", "--split", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_outputs(d / "one", out, ["s0"], exact=False)
    assert leftovers(out) == []


def test_evaluate_on_ray_writes_the_same_report(data, tmp_path):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    d, ckpt = data
    args = ["evaluate", str(d / "scenes"), "-m", str(ckpt), "--method", "gradcam", "--curve-steps", "2", "--max-tiles", "4", "-q"]
    one = CliRunner().invoke(app, args + ["-o", str(tmp_path / "one.csv")])
    assert one.exit_code == 0, one.output
    two = CliRunner().invoke(app, args + ["-o", str(tmp_path / "ray.csv"), "--ray", "local", "--workers", "2"])
    assert two.exit_code == 0, two.output
    for suffix in (".csv", "_summary.csv"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"ray{suffix}").read_bytes()
