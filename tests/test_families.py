"""Every model family × the commands people run first: `layers`, the default `explain`, an encoder
and a decoder layer with gradcam + eigencam, `evaluate --max-tiles 1`.

Tiny randomly initialised models (tests/model_zoo.py) on a 4-band uint16 scene; each family's
maps must lie on the input grid, be finite, in [0, 1] and non-constant where the model predicts
the explained class.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from segxai_cli.cam import EmptyRegionWarning, explain_batch
from segxai_cli.cli.app import app
from segxai_cli.model.adapter import remember_tile
from segxai_cli.model.checkpoint import save_checkpoint
from segxai_cli.model.families import as_adapter
from segxai_cli.model.layers import resolve_layer
from segxai_cli.tiling.tiles import normalize
from tests.conftest import write_geotiff
from tests.model_zoo import TILE, build, infos

runner = CliRunner()
INFOS = infos()
FAMILIES = list(INFOS)


def scene_array(bands: int = 4, h: int = 80, w: int = 96, seed: int = 0, dtype=np.uint16) -> np.ndarray:
    """Smooth blobs plus noise around 1000 ± 300: structure every random model reacts to."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.sin(yy / 7.0) * np.cos(xx / 9.0)
    arr = np.stack([1000 + 400 * base * (1 if b % 2 else -1) + rng.normal(0, 80, (h, w)) for b in range(bands)])
    return np.clip(arr, 0, None).astype(dtype)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """label -> (checkpoint path, model, info, scene path); the explained class is one the model predicts."""
    root = tmp_path_factory.mktemp("zoo")
    scene = write_geotiff(root / "scene.tif", scene_array())
    out = {}
    for label, info in INFOS.items():
        for seed in range(4):  # a random model whose Grad-CAM is negative everywhere explains nothing
            model = build(info, seed)
            remember_tile(model, TILE)
            target = _explainable_class(model, _tile(info, scene))
            if target is not None:
                break
        info.target_class = target
        out[label] = (save_checkpoint(root / f"{label}.pt", model, info), model, info, scene)
    return out


def _tile(info, scene) -> torch.Tensor:
    with rasterio.open(scene) as src:
        x = torch.from_numpy(src.read(window=((0, TILE), (0, TILE))).astype(np.float32))[None]
    return normalize(x, torch.ones(1, TILE, TILE, dtype=torch.bool), info.band_stats)


@torch.no_grad()
def _balance(model, x: torch.Tensor) -> None:
    """Shift the classifier's class-1 bias so that class 1 is predicted on half of the first tile
    (a random model may otherwise predict one class everywhere: nothing to explain)."""
    head = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 2
            and m.bias is not None and not n.startswith("aux")][-1]
    z = as_adapter(model)(x)
    head.bias[1] -= float((z[:, 1] - z[:, 0]).median())


def _explainable_class(model, x: torch.Tensor) -> int:
    """After balancing, the class whose default Grad-CAM is not all zero (with random weights a
    map can be negative everywhere, which the ReLU rightly clears)."""
    _balance(model, x)
    for c in (1, 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyRegionWarning)  # a class predicted nowhere is skipped below
            maps, logits = explain_batch(model, x, "decoder.last", ["gradcam"], target_class=c, return_logits=True)
        inside = maps["gradcam"][logits.argmax(1) == c]
        if inside.numel() and float(inside.max() - inside.min()) > 1e-3:
            return c
    return None


def _check_maps(maps: torch.Tensor, region: torch.Tensor, varies: bool = True) -> None:
    assert maps.shape[-2:] == region.shape[-2:]
    assert torch.isfinite(maps).all()
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    inside = maps[region]
    assert inside.numel()
    if varies:
        assert float(inside.max() - inside.min()) > 1e-3


@pytest.mark.parametrize("label", FAMILIES)
def test_layers_command_lists_distinct_aliases(zoo, label):
    ckpt, model, _, _ = zoo[label]
    res = runner.invoke(app, ["layers", str(ckpt), "--json"])
    assert res.exit_code == 0, res.output
    aliases = {a: r["name"] for r in json.loads(res.stdout) for a in r["aliases"]}
    assert {"bottleneck", "encoder.1", "decoder.0", "decoder.last"} <= set(aliases), aliases
    if label != "torchvision-lraspp":  # LR-ASPP's head has a single feature stage
        assert resolve_layer(model, "decoder.0").module is not resolve_layer(model, "decoder.last").module
    assert resolve_layer(model, "encoder.1").module is not resolve_layer(model, "bottleneck").module


@pytest.mark.parametrize("label", FAMILIES)
def test_default_explain(zoo, label, tmp_path):
    ckpt, _, info, scene = zoo[label]
    res = runner.invoke(app, ["explain", str(scene), "-m", str(ckpt), "-o", str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "scene_saliency.tif") as sal, rasterio.open(tmp_path / "scene_prediction.tif") as pr:
        s, pred = sal.read(1), pr.read(1)
        assert (sal.width, sal.height) == (96, 80)
    _check_maps(torch.from_numpy(s), torch.from_numpy(pred == info.target_class))


@pytest.mark.parametrize("label", FAMILIES)
def test_encoder_and_decoder_layer_gradcam_eigencam(zoo, label):
    _, model, info, scene = zoo[label]
    x = _tile(info, scene)
    for layer in ("encoder.2", "decoder.0"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an empty region would be a useless check
            maps, logits = explain_batch(model, x, layer, ["gradcam", "eigencam"], target_class=info.target_class,
                                         return_logits=True)
        region = logits.argmax(1) == info.target_class
        for name, m in maps.items():
            assert m.shape == (1, TILE, TILE), (layer, name)
            # a random model's Grad-CAM may be negative everywhere at some layer (ReLU: all zero);
            # Eigen-CAM, oriented towards the region, never is
            _check_maps(m, region, varies=name == "eigencam")


@pytest.mark.parametrize("label", FAMILIES)
def test_evaluate_one_tile(zoo, label, tmp_path):
    ckpt, _, _, scene = zoo[label]
    res = runner.invoke(app, ["evaluate", str(scene), "-m", str(ckpt), "-o", str(tmp_path / "r.csv"), "-q",
                              "--max-tiles", "1", "--method", "gradcam", "--curve-steps", "0", "--budget", "none"])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 and "gradcam" in lines[1]  # one tile x one method x 3 modes
