from pathlib import Path

import pytest

from segxai_cli.errors import InputError
from segxai_cli.raster.inputs import expand_paths, match_masks
from segxai_cli.raster.source import RasterSource


def touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_folders_globs_files_and_masks(tmp_path):
    a = touch(tmp_path / "d" / "a.tif")
    touch(tmp_path / "d" / "a_mask.tif")
    b = touch(tmp_path / "d" / "sub" / "b.TIFF")
    touch(tmp_path / "d" / ".hidden.tif")
    touch(tmp_path / "d" / "a_saliency.tif")
    touch(tmp_path / "d" / "notes.txt")
    files, problems = expand_paths([tmp_path / "d", str(tmp_path / "d" / "**" / "*.TIFF"), a])
    assert [f.path for f in files] == sorted([a, b], key=str) and problems == []
    # a mask named explicitly is a scene
    files, _ = expand_paths([tmp_path / "d" / "a_mask.tif"])
    assert [f.path for f in files] == [tmp_path / "d" / "a_mask.tif"]
    # missing files come back (opening them gives the error); empty folders/globs are problems
    (tmp_path / "empty").mkdir()
    files, problems = expand_paths([tmp_path / "nope.tif", tmp_path / "empty", str(tmp_path / "*.jp2")])
    assert [f.path for f in files] == [tmp_path / "nope.tif"]
    assert [r for _, r in problems] == ["folder has no .tif/.tiff files", "no files match"]
    masks_only = tmp_path / "m"
    touch(masks_only / "x_mask.tif")
    _, problems = expand_paths([masks_only])
    assert "other than *_mask files" in problems[0][1]


def test_match_masks(tmp_path):
    s1 = touch(tmp_path / "img" / "s1.tif")
    s2 = touch(tmp_path / "img" / "s2.tif")
    s3 = touch(tmp_path / "img" / "s3.tif")
    m1 = touch(tmp_path / "img" / "s1_mask.tif")
    m2 = touch(tmp_path / "lbl" / "s2.tif")
    s1, s2, s3, m1, m2 = map(RasterSource.of, (s1, s2, s3, m1, m2))
    got = match_masks([s1, s2, s3], [tmp_path / "img", tmp_path / "lbl"])
    assert got == {s1: m1, s2: m2, s3: None}
    touch(tmp_path / "other" / "s1_mask.tif")
    with pytest.raises(InputError, match="several candidate masks"):
        match_masks([RasterSource.of(touch(tmp_path / "x" / "s1.tif"))], [tmp_path / "img", tmp_path / "other"])
    with pytest.raises(InputError, match="no such file"):
        match_masks([s1], [tmp_path / "missing_mask.tif"])
