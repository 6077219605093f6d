import pickle

import pytest
import torch

from segxai_cli.errors import InputError
from segxai_cli.model.checkpoint import load_checkpoint


def test_roundtrip_same_outputs(tiny_model, tiny_checkpoint):
    model, info = tiny_model
    loaded, linfo = load_checkpoint(tiny_checkpoint)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert linfo.arch == info.arch and linfo.classes == 2 and linfo.bands == [1, 2, 3]
    assert linfo.band_stats == info.band_stats and linfo.tile_size == 64
    assert linfo.sha256 and len(linfo.sha256) == 64


def test_plain_state_dict_needs_names(tmp_path, tiny_model):
    model, info = tiny_model
    p = tmp_path / "plain.pt"
    torch.save(model.state_dict(), p)
    with pytest.raises(InputError, match="--arch"):
        load_checkpoint(p)
    loaded, linfo = load_checkpoint(p, arch="Unet", encoder="resnet18", classes=2, model_kwargs=info.model_kwargs)
    assert linfo.in_channels == 3 and linfo.band_stats is None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_untrusted_pickle_refused(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, p)
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(p)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", pickle.dumps([1, 2, 3])])
def test_corrupt_checkpoint(tmp_path, content):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(InputError):
        load_checkpoint(p)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_checkpoint(tmp_path / "nope.pt")
