"""The scene pipeline on CUDA: pinned batches from the reader, on-device blending and statistics,
autocast, COGs written from device strips — the paths ``benchmarks/gpu_check.sh`` times. Skipped
without CUDA (run them with ``pytest -m gpu`` on a GPU machine)."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import torch

from segxai_cli.explain import explain_scene
from segxai_cli.explain.pipeline import PipelineConfig, run_scene
from segxai_cli.explain.reading import END, Reader
from segxai_cli.raster.source import RasterSource
from segxai_cli.raster.writer import cog_problems
from segxai_cli.synth import generate_scene
from segxai_cli.tiling.grid import TileGrid

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
FIVE = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"]


@pytest.fixture(autouse=True)
def full_fp32():
    """cuDNN convolutions default to TF32 on Ampere and later (~1e-3 relative): compare in real fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def scene(make_geotiff):
    img, _, _ = generate_scene(230, 200, 1, nodata_border=True)
    return make_geotiff("scene.tif", img, nodata=0)


def collect(path, model, info, device, **kw):
    out = {}
    cfg = PipelineConfig(tile=64, overlap=16, bidx=[1, 2, 3], stats=info.band_stats, n_classes=info.classes,
                         device=torch.device(device), batch_size=3, **kw)
    stats = run_scene(path, model.to(device), cfg, sink=lambda r, s, p: out.__setitem__(r, (s, p)))
    sal = np.concatenate([out[k][0] for k in sorted(out)], axis=1)
    pred = np.concatenate([out[k][1] for k in sorted(out)], axis=0)
    return sal, pred, stats


def test_scene_on_cuda_matches_cpu(scene, tiny_model):
    model, info = tiny_model
    s_cpu, p_cpu, st_cpu = collect(scene, model, info, "cpu", methods=FIVE)
    s_gpu, p_gpu, st_gpu = collect(scene, model, info, "cuda", methods=FIVE)
    assert np.array_equal(np.isnan(s_cpu), np.isnan(s_gpu))
    scale = np.nanmax(np.abs(s_cpu), axis=(1, 2), keepdims=True) + 1e-12
    assert np.nanmax(np.abs(s_gpu - s_cpu) / scale) < 1e-3
    assert (p_gpu == p_cpu).mean() > 0.999  # argmax ties may fall either way
    assert st_gpu.valid_pixels == st_cpu.valid_pixels and st_gpu.tiles_computed == st_cpu.tiles_computed
    np.testing.assert_allclose(st_gpu.mean_raw, st_cpu.mean_raw, rtol=1e-3, atol=1e-6)


def test_inference_only_on_cuda_matches_cpu(scene, tiny_model):
    model, info = tiny_model
    _, p_cpu, _ = collect(scene, model, info, "cpu", methods=[])
    s_gpu, p_gpu, _ = collect(scene, model, info, "cuda", methods=[])
    assert s_gpu.shape[0] == 0 and (p_gpu == p_cpu).mean() > 0.999


def test_scene_on_cuda_with_bf16_autocast_is_close_to_fp32(scene, tiny_model):
    model, info = tiny_model
    ref, _, _ = collect(scene, model, info, "cuda", methods=["gradcam", "hirescam"])
    out, _, st = collect(scene, model, info, "cuda", methods=["gradcam", "hirescam"], autocast="bf16")
    ok = ~np.isnan(ref)
    assert np.array_equal(ok, ~np.isnan(out)) and np.isfinite(st.mean_raw).all()
    for b in range(ref.shape[0]):
        assert np.corrcoef(ref[b][ok[b]], out[b][ok[b]])[0, 1] > 0.9


def test_reader_pins_batches_for_cuda(scene):
    q: queue.Queue = queue.Queue(maxsize=2)
    reader = Reader(RasterSource.of(scene), TileGrid(230, 200, 64, 16), [1, 2, 3], 4, None, q, threading.Event(),
                    pin=True)
    reader.start()
    batches = []
    while (item := q.get()) is not END:
        assert not isinstance(item, BaseException), item
        batches.append(item)
    reader.join()
    assert batches and all(b.images.is_pinned() for b in batches if b.images is not None)


def test_explain_scene_on_cuda_writes_valid_cogs(tmp_path, scene, tiny_model):
    model, info = tiny_model
    r = explain_scene(scene, tmp_path / "out", model=(model.cuda(), info), methods=FIVE, device="cuda",
                      batch_size=8, autocast="bf16")
    assert r.status == "done"
    assert cog_problems(str(r.saliency)) == [] and cog_problems(str(r.prediction)) == []
