"""Model-agnostic methods: occlusion against Captum, RISE deterministic and converging, and both on
models that are only a file (TorchScript, ONNX) — where CAM methods are refused with one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from segxai_cli.cam import explain_batch
from segxai_cli.cam.context import frozen_eval, shared_forward
from segxai_cli.cam.methods.occlusion import occlusion_map
from segxai_cli.cam.methods.rise import compute as rise_compute
from segxai_cli.cli.app import app
from segxai_cli.errors import UsageError
from segxai_cli.model.families import as_adapter
from tests.model_zoo import tiny_unet
from tests.test_families import scene_array

runner = CliRunner()


@pytest.fixture(scope="module")
def net():
    return tiny_unet(bands=3)


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _ctx(net, x, region, **opts):
    with frozen_eval(net):
        return shared_forward(as_adapter(net), x, [], target_class=1, region=region, valid=None, use_probs=False,
                              autocast=None, need_grad=False, opts=opts)


def test_occlusion_equals_captum(net, x):
    from captum.attr import Occlusion

    region = torch.zeros(2, 32, 32, dtype=torch.bool)
    region[:, 8:20, 10:26] = True
    ours = occlusion_map(_ctx(net, x, region, occlusion_window=8, occlusion_stride=4, baseline=0.5))

    def target(inp):  # the segmentation target summed over the region, one score per image
        reg = region.repeat(inp.shape[0] // region.shape[0], 1, 1)  # Captum stacks perturbations batch-wise
        return (net(inp)[:, 1] * reg.float()).sum((1, 2))

    with torch.no_grad():
        ref = Occlusion(target).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.5,
                                          perturbations_per_eval=16)
    # Captum attributes per band; our patch covers every band, so every band holds the same value
    torch.testing.assert_close(ref[:, 0], ref[:, 2])
    torch.testing.assert_close(ours, ref[:, 0], atol=1e-4, rtol=1e-4)


def test_occlusion_covers_edges_the_stride_misses(net, x):
    region = torch.ones(2, 32, 32, dtype=torch.bool)
    m = occlusion_map(_ctx(net, x, region, occlusion_window=12, occlusion_stride=8))
    assert torch.isfinite(m).all() and bool((m[:, -1, :] != 0).any()) and bool((m[:, :, -1] != 0).any())


@pytest.fixture(scope="module")
def fcn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 5, padding=2),
                               torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 5, padding=2)).eval()


def test_rise_deterministic_and_chunk_invariant(fcn):
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    region = torch.zeros(2, 24, 24, dtype=torch.bool)
    region[:, 4:20, 4:20] = True
    a = rise_compute(_ctx(fcn, x, region, rise_masks=300, rise_seed=7, rise_cells=4))
    b = rise_compute(_ctx(fcn, x, region, rise_masks=300, rise_seed=7, rise_cells=4, perturb_chunk=7))
    scale = float(a.abs().max())
    torch.testing.assert_close(a, b, atol=1e-4 * scale, rtol=0)  # same seed, other chunking: same masks
    c = rise_compute(_ctx(fcn, x, region, rise_masks=300, rise_seed=8, rise_cells=4))
    assert not torch.allclose(a, c)


def test_rise_converges(fcn):
    """corr(N = 2000, N = 8000) >= 0.9 on a small fully convolutional fixture (other seeds)."""
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    region = torch.zeros(1, 24, 24, dtype=torch.bool)
    region[:, 6:14, 8:18] = True
    small = rise_compute(_ctx(fcn, x, region, rise_masks=2000, rise_seed=1, rise_cells=6, perturb_chunk=500))
    large = rise_compute(_ctx(fcn, x, region, rise_masks=8000, rise_seed=2, rise_cells=6, perturb_chunk=500))
    corr = np.corrcoef(small.flatten().numpy(), large.flatten().numpy())[0, 1]
    assert corr >= 0.9, corr


def test_explain_batch_without_layer(net, x):
    maps = explain_batch(net, x, methods=["rise", "occlusion"], rise_masks=64, occlusion_window=8, occlusion_stride=8)
    for m in maps.values():
        assert m.shape == (2, 32, 32) and torch.isfinite(m).all() and float(m.min()) >= 0 and float(m.max()) <= 1
        assert float(m.amax((1, 2)).min()) == pytest.approx(1.0)
    with pytest.raises(UsageError, match="no target layer"):
        explain_batch(net, x, methods=["gradcam", "rise"], rise_masks=8)


# ----------------------------------------------------------------------------- bare files
@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A 4-band scene and the tiny U-Net as a TorchScript and an ONNX file, imported by the CLI."""
    root = tmp_path_factory.mktemp("bare")
    from tests.conftest import write_geotiff

    scene = write_geotiff(root / "scene.tif", scene_array())
    net = tiny_unet(bands=4)
    example = torch.zeros(1, 4, 64, 64)
    torch.jit.trace(net, example).save(str(root / "unet.ts"))
    torch.onnx.export(net, example, str(root / "unet.onnx"), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}})
    models = {}
    for name in ("unet.ts", "unet.onnx"):
        out = root / f"{name}.pt"
        res = runner.invoke(app, ["import", str(root / name), "-o", str(out), "--tile-size", "64",
                                  "--band-mean", "1000,1000,1000,1000", "--band-std", "300,300,300,300"])
        assert res.exit_code == 0, res.output
        models[name.split(".")[1]] = out
    return scene, models, net


@pytest.mark.parametrize("kind", ["ts", "onnx"])
def test_bare_model_explain_rise_occlusion(bare, kind, tmp_path):
    scene, models, _ = bare
    res = runner.invoke(app, ["explain", str(scene), "-m", str(models[kind]), "-o", str(tmp_path), "-q",
                              "--method", "rise,occlusion", "--rise-masks", "32", "--occlusion-window", "16"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "scene_saliency.tif") as src:
        assert src.count == 2 and (src.width, src.height) == (96, 80)
        data = src.read()
    assert np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1
    record = json.loads((tmp_path / "scene_saliency.json").read_text())
    assert record["options"]["blackbox"]["rise_masks"] == 32


@pytest.mark.parametrize("kind", ["ts", "onnx"])
def test_bare_model_cam_method_is_one_clear_error(bare, kind, tmp_path):
    scene, models, _ = bare
    res = runner.invoke(app, ["explain", str(scene), "-m", str(models[kind]), "-o", str(tmp_path), "--method", "gradcam"])
    assert res.exit_code != 0
    assert "methods that apply: rise, occlusion" in res.output and "Traceback" not in res.output
    layers = runner.invoke(app, ["layers", str(models[kind])])
    assert layers.exit_code == 0 and "rise, occlusion" in layers.output


@pytest.mark.parametrize("kind", ["ts", "onnx"])
def test_bare_model_evaluate_and_same_logits(bare, kind, tmp_path):
    scene, models, net = bare
    res = runner.invoke(app, ["evaluate", str(scene), "-m", str(models[kind]), "-o", str(tmp_path / "r.csv"), "-q",
                              "--max-tiles", "1", "--method", "occlusion", "--curve-steps", "0",
                              "--occlusion-window", "32", "--occlusion-stride", "32"])
    assert res.exit_code == 0, res.output
    from segxai_cli.model.checkpoint import load_checkpoint

    loaded, info = load_checkpoint(models[kind])
    assert info.family == {"ts": "torchscript", "onnx": "onnx"}[kind] and info.classes == 2
    x = torch.randn(3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(as_adapter(loaded)(x), net(x), atol=1e-4, rtol=1e-4)


def test_bare_file_without_import_is_refused(bare, tmp_path):
    scene, _, _ = bare
    res = runner.invoke(app, ["explain", str(scene), "-m", str(scene.parent / "unet.onnx"), "-o", str(tmp_path)])
    assert res.exit_code == 1 and "segxai import" in res.output
