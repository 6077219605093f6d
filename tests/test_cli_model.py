import json

from typer.testing import CliRunner

from segxai_cli.cli.app import app

runner = CliRunner()


def test_layers_lists_aliases(tiny_checkpoint):
    res = runner.invoke(app, ["layers", str(tiny_checkpoint), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    names = {r["name"]: r for r in rows}
    assert "decoder.blocks.0" in names
    assert names["decoder.blocks.0"]["shape"].startswith("1x")
    aliases = {a for r in rows for a in r["aliases"]}
    assert {"bottleneck", "decoder.0", "decoder.last"} <= aliases
    table = runner.invoke(app, ["layers", str(tiny_checkpoint), "--grep", "decoder"])
    assert table.exit_code == 0 and "decoder.blocks" in table.stdout


def test_info_json(tiny_checkpoint):
    res = runner.invoke(app, ["info", str(tiny_checkpoint), "--json"])
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)
    assert meta["arch"] == "Unet" and meta["bands"] == [1, 2, 3] and meta["parameters"] > 0
    assert len(meta["sha256"]) == 64


def test_bad_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    res = runner.invoke(app, ["info", str(bad)])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in res.output


def test_import_plain_state_dict(tmp_path, tiny_model, make_geotiff):
    import numpy as np
    import torch

    from segxai_cli.model.checkpoint import load_checkpoint

    model, info = tiny_model
    sd = tmp_path / "plain.pth"
    torch.save(model.state_dict(), sd)
    scene = make_geotiff("s.tif", np.stack([np.full((32, 32), v, np.uint8) for v in (10, 20, 30)]))
    out = tmp_path / "wrapped.pt"
    args = ["import", str(sd), "-o", str(out), "--arch", "Unet", "--encoder", "resnet18", "--classes", "2",
            "--encoder-depth", "3", "--decoder-channels", "32,16,8", "--tile-size", "64"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "band statistics needed" in res.output and not out.exists()  # a usage error
    res = runner.invoke(app, args + ["--stats-from", str(scene), "--class-names", "bg,building"])
    assert res.exit_code == 0, res.output
    net, meta = load_checkpoint(out)
    assert meta.band_stats.mean == (10.0, 20.0, 30.0) and meta.class_names == ["bg", "building"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))
    res = runner.invoke(app, args + ["--band-mean", "1,2,3", "--band-std", "1,1,1"])
    assert res.exit_code == 1 and "exists" in res.output
