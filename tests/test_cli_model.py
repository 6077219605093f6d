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
