"""`segxai import` reads the files people have: every wrapper layout of a state_dict, TorchGeo
Lightning checkpoints without flags, Hugging Face folders, torchvision weights — and names the
first keys that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.model.checkpoint import load_checkpoint
from segxai_cli.model.families import as_adapter
from tests.model_zoo import build, infos, segformer_config, tiny_unet

runner = CliRunner()
STATS = ["--band-mean", "1000,1000,1000,1000", "--band-std", "300,300,300,300", "--tile-size", "64"]
UNET = ["--arch", "Unet", "--encoder", "tu-resnet10t", "--classes", "2", "--encoder-depth", "3",
        "--decoder-channels", "16,8,8", "--in-channels", "4"]


def _same(loaded, net):
    x = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(as_adapter(loaded)(x), as_adapter(net)(x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(bands=4)


@pytest.mark.parametrize("layout", ["plain", "dataparallel", "state_dict", "model_state_dict", "lightning", "compiled"])
def test_state_dict_layouts(unet, tmp_path, layout):
    sd = unet.state_dict()
    obj = {
        "plain": sd,
        "dataparallel": {f"module.{k}": v for k, v in sd.items()},
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model_state_dict": {"model_state_dict": sd, "optimizer_state_dict": {}, "epoch": 3},
        "lightning": {"state_dict": {**{f"model.{k}": v for k, v in sd.items()}, "criterion.weight": torch.ones(2)},
                      "epoch": 1, "global_step": 10},
        "compiled": {f"_orig_mod.{k}": v for k, v in sd.items()},
    }[layout]
    src = tmp_path / "w.pth"
    torch.save(obj, src)
    res = runner.invoke(app, ["import", str(src), "-o", str(tmp_path / "m.pt"), *UNET, *STATS])
    assert res.exit_code == 0, res.output
    _same(load_checkpoint(tmp_path / "m.pt")[0], unet)


def test_misfit_names_the_first_keys(unet, tmp_path):
    sd = dict(unet.state_dict())
    sd.pop("segmentation_head.0.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "w.pth")
    res = runner.invoke(app, ["import", str(tmp_path / "w.pth"), "-o", str(tmp_path / "m.pt"), *UNET, *STATS])
    assert res.exit_code == 1
    assert "missing key(s) (segmentation_head.0.weight)" in res.output and "extra.weight" in res.output
    wrong = runner.invoke(app, ["import", str(tmp_path / "w.pth"), "-o", str(tmp_path / "m.pt"), *UNET[:-2],
                                "--in-channels", "3", *STATS])
    assert wrong.exit_code == 1 and "shape mismatch" in wrong.output


@pytest.mark.parametrize("model,family", [("fcn", "torchgeo"), ("unet", "smp")])
def test_torchgeo_checkpoint_without_flags(tmp_path, model, family):
    info = infos()["torchgeo-fcn"]
    if model == "fcn":
        net, hp = build(info), {"model": "fcn", "backbone": "resnet50", "in_channels": 4, "num_classes": 2, "num_filters": 8}
    else:
        import segmentation_models_pytorch as smp

        torch.manual_seed(0)
        net = smp.Unet("tu-resnet10t", encoder_weights=None, in_channels=4, classes=3).eval()
        hp = {"model": "unet", "backbone": "tu-resnet10t", "weights": None, "in_channels": 4, "task": "multiclass",
              "num_classes": 3, "num_labels": None, "loss": "ce", "lr": 1e-3, "ignore_index": None}
    ckpt = {"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}, "hyper_parameters": hp,
            "epoch": 2, "global_step": 7, "pytorch-lightning_version": "2.5.0", "loops": {}, "optimizer_states": []}
    torch.save(ckpt, tmp_path / "tg.ckpt")
    res = runner.invoke(app, ["import", str(tmp_path / "tg.ckpt"), "-o", str(tmp_path / "m.pt"), *STATS])
    assert res.exit_code == 0, res.output
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta.family == family and meta.in_channels == 4
    _same(loaded, net)


def test_hf_folder_and_torchvision_weights(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    cfg = SegformerConfig(**{**segformer_config(), "id2label": {0: "bg", 1: "roof"}, "label2id": {"bg": 0, "roof": 1}})
    torch.manual_seed(0)
    hf = SegformerForSemanticSegmentation(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    res = runner.invoke(app, ["import", str(tmp_path / "hf"), "-o", str(tmp_path / "hf.pt"), *STATS])
    assert res.exit_code == 0, res.output
    loaded, meta = load_checkpoint(tmp_path / "hf.pt")
    assert meta.family == "hf" and meta.class_names == ["bg", "roof"]
    _same(loaded, hf)

    tv = build(infos()["torchvision-lraspp"])
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    res = runner.invoke(app, ["import", str(tmp_path / "tv.pth"), "-o", str(tmp_path / "tv.pt"), "--family", "torchvision",
                              "--arch", "lraspp_mobilenet_v3_large", "--classes", "2", *STATS])
    assert res.exit_code == 0, res.output
    _same(load_checkpoint(tmp_path / "tv.pt")[0], tv)


def test_sidecar_gives_stats_and_classes(unet, tmp_path):
    torch.save(unet.state_dict(), tmp_path / "w.pth")
    (tmp_path / "w.pth.segxai.json").write_text(
        '{"arch": "Unet", "encoder": "tu-resnet10t", "classes": 2, "in_channels": 4, "tile_size": 64,'
        ' "model_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},'
        ' "band_mean": [1, 2, 3, 4], "band_std": [5, 6, 7, 8], "class_names": ["bg", "roof"]}')
    res = runner.invoke(app, ["import", str(tmp_path / "w.pth"), "-o", str(tmp_path / "m.pt")])
    assert res.exit_code == 0, res.output
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta.band_stats.std == (5.0, 6.0, 7.0, 8.0) and meta.class_names == ["bg", "roof"]
    assert np.isclose(meta.band_stats.mean[3], 4.0)
