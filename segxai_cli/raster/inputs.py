"""Which files a command works on: files, folders and globs → scenes, and scenes → their masks.

One rule for every command (explain, evaluate, train):

- a folder means its ``*.tif``/``*.tiff`` files (not recursive); a glob is expanded (``**`` recursive);
  hidden files and segxai's own outputs (``*_saliency.tif``, ``*_prediction.tif``) found that way are
  ignored; the result is sorted and de-duplicated;
- files named ``*_mask.tif`` found in a folder or glob are masks, never scenes (so scenes and masks
  may share a folder); name one explicitly to use it as a scene;
- the mask of scene ``<stem>.tif`` is ``<stem>_mask.tif`` among the mask inputs, or else a file with
  the same name as the scene in another folder (``images/a.tif`` ↔ ``masks/a.tif``);
- a location that is not a local file (``https://``, ``s3://``, ``/vsi…``) is taken as it is; a STAC
  document (``*.json``) gives one scene per item, with the bands selected by ``assets``/``bands``
  (:mod:`segxai_cli.raster.sources.stac`); an input list (``--inputs-from``) holds any of these,
  one a line.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Union

from segxai_cli.errors import InputError, UsageError
from segxai_cli.raster.source import RasterSource, StacItemSource

RASTER_SUFFIXES = (".tif", ".tiff")
OUTPUT_SUFFIXES = ("_saliency.tif", "_prediction.tif")
MASK_SUFFIX = "_mask"

PathSpec = Union[str, Path, RasterSource]


def is_mask_name(path: Union[Path, RasterSource]) -> bool:
    return path.stem.lower().endswith(MASK_SUFFIX)


def _is_candidate(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and name.endswith(RASTER_SUFFIXES) and not name.startswith(".") and not name.endswith(OUTPUT_SUFFIXES)


def expand_paths(items: Iterable[PathSpec], *, masks: bool = False, assets: Sequence[str] | None = None,
                 bands: Sequence[int | str] | None = None) -> tuple[list[RasterSource], list[tuple[str, str]]]:
    """Expand files, folders and globs into (sources, problems).

    A problem is ``(spec, reason)`` for a folder or glob that gave no file; callers decide whether it
    is fatal. A named file is returned as is, even if missing: opening it gives the clear error.
    Locations that are not local files (``/vsi…`` paths, URLs) are passed through unchanged.
    With ``masks=False``, ``*_mask`` files from folders/globs are left out (they are masks).
    STAC documents are read here (one source per item); a document that fails is a problem.
    """
    found: dict[str, RasterSource] = {}
    problems: list[tuple[str, str]] = []
    names = tuple(b for b in bands or () if isinstance(b, str)) or None
    for item in items:
        source = RasterSource.of(item)
        spec = source.uri
        if isinstance(source, StacItemSource) and not source.item:
            try:
                for it in StacItemSource.expand(spec, tuple(assets) if assets else None, names):
                    found.setdefault(it.uri, it)
            except InputError as exc:
                problems.append((str(source), str(exc).removeprefix(f"{source}: ")))
            continue
        if not source.is_local:
            found.setdefault(spec, source)
            continue
        p = Path(spec)
        if p.is_dir():
            matches = sorted(m for m in p.iterdir() if _is_candidate(m))
            reason = "folder has no .tif/.tiff files"
        elif glob.has_magic(spec) and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True) if _is_candidate(Path(m)))
            reason = "no files match"
        else:
            found.setdefault(os.path.abspath(p), source)
            continue
        if not masks and any(is_mask_name(m) for m in matches):
            matches = [m for m in matches if not is_mask_name(m)]
            reason += " other than *_mask files"
        if not matches:
            problems.append((spec, reason))
        for m in matches:
            found.setdefault(os.path.abspath(m), RasterSource.of(m))
    return sorted(found.values(), key=str), problems


def read_input_list(path: str | Path) -> list[str]:
    """``--inputs-from FILE``: one location a line (any kind); blank lines and ``#`` lines are skipped.
    ``-`` reads standard input. Relative paths are relative to the current folder, as on the command line."""
    import sys

    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--inputs-from {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--inputs-from {path}: not a text file (one location a line)") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def match_masks(scenes: Sequence[RasterSource], mask_items: Iterable[PathSpec]) -> dict[RasterSource, RasterSource | None]:
    """The mask of each scene (see the module docstring), or None where there is none.

    Raises :class:`InputError` when a mask input does not exist or a scene has several candidates.
    """
    mask_items = list(mask_items)
    files, problems = expand_paths(mask_items, masks=True)
    for spec, reason in problems:
        raise InputError(f"masks {spec}: {reason}")
    for m in files:
        if not m.exists():
            raise InputError(f"masks {m}: no such file or folder")
    by_name: dict[str, list[RasterSource]] = {}
    for m in files:
        by_name.setdefault(m.name.lower(), []).append(m)
    if len(scenes) == 1 and len(mask_items) == 1 and _is_file(mask_items[0]):
        return {scenes[0]: files[0]}  # one scene, one mask file: whatever its name
    out: dict[RasterSource, RasterSource | None] = {}
    for scene in scenes:
        cands: list[RasterSource] = []
        for suffix in RASTER_SUFFIXES:
            cands = by_name.get(f"{scene.stem}{MASK_SUFFIX}{suffix}".lower(), [])
            if cands:
                break
        if not cands:
            cands = [m for m in by_name.get(scene.name.lower(), []) if _resolved(m) != _resolved(scene)]
        if len(cands) > 1:
            same_dir = [c for c in cands if _folder(c) == _folder(scene)]
            if len(same_dir) != 1:
                raise InputError(f"{scene}: several candidate masks ({', '.join(map(str, cands))}); pass one masks folder")
            cands = same_dir
        out[scene] = cands[0] if cands else None
    return out


def _is_file(item: PathSpec) -> bool:
    source = RasterSource.of(item)
    return not source.is_local or source.path.is_file()


def _resolved(s: RasterSource) -> str:
    if not s.is_local:
        return s.uri
    try:
        return str(s.path.resolve())
    except OSError:
        return str(s.path.absolute())


def _folder(s: RasterSource) -> str:
    return _resolved(s).rsplit("/", 1)[0]
