"""The options of an explain run, resolved once into typed values and then carried unchanged.

Two steps, so that a typo fails in milliseconds — before torch, rasterio or the model is loaded:

1. :func:`resolve_options` checks everything that needs no model (method names, layer syntax,
   overlap, tile size range, normalisation, autocast, compression, the region) and returns an
   :class:`ExplainOptions`;
2. :func:`bind_options` checks it against the loaded model (class name, band count, tile size
   against the model's stride, layers that exist) and fills in the model's defaults.

Layers use one grammar in every command: ``a+b`` averages the maps of several layers into one;
repeating ``--layer`` gives one map per layer (explain writes a band per method and layer,
``<method>@<layer>``; evaluate compares them in its report).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional, Union

from segxai_cli.cam.blackbox import BlackBoxOptions
from segxai_cli.cam.registry import layer_free, resolve_methods
from segxai_cli.errors import UsageError
from segxai_cli.model.info import MAX_TILE, MIN_TILE
from segxai_cli.options import layer_names, parse_band_selection, parse_bbox, parse_layers, parse_names

if TYPE_CHECKING:
    from torch import nn

    from segxai_cli.model.info import ModelInfo

NORMALIZE_MODES = ("scene", "tile", "none")
AUTOCAST_MODES = ("bf16", "fp16")
COMPRESSIONS = ("deflate", "zstd", "lzw", "none")


# ----------------------------------------------------------------------------- the region
@dataclass(frozen=True)
class RegionSpec:
    """What is explained in each scene: the predicted mask (default), a mask raster, vector objects or a box.

    With a region, the map says what in each window supports *the region's* score — channel weights
    are global, so without clipping it is non-zero outside the region too. ``clip`` (the default
    whenever a region is given) zeroes it outside and normalises within the region; ``clip=False``
    keeps the whole map. ``per_feature`` explains each vector feature on its own (a file per feature).
    """

    kind: str = "predicted"  # predicted | mask | vector | bbox
    location: Optional[str] = None  # mask raster ('{stem}' = the scene's name) or vector file
    layer: Optional[str] = None  # vector layer
    bbox: Optional[tuple[float, float, float, float]] = None
    bbox_crs: Optional[str] = None  # the box's CRS (default: the scene's)
    clip: bool = False
    per_feature: bool = False
    feature_id: Optional[str] = None  # attribute naming each feature's files (default: its index)

    def describe(self) -> str:
        if self.kind == "mask":
            return f"mask:{self.location}"
        if self.kind == "vector":
            return f"vector:{self.location}" + (f":{self.layer}" if self.layer else "")
        if self.kind == "bbox":
            return "bbox:" + ",".join(repr(v) for v in self.bbox) + (f"@{self.bbox_crs}" if self.bbox_crs else "")
        return "predicted"


def resolve_region(region_mask=None, vector=None, vector_layer=None, bbox=None, bbox_crs=None, clip=None,
                   per_feature=False, feature_id=None) -> RegionSpec:
    given = [n for n, v in (("--region-mask", region_mask), ("--vector", vector), ("--bbox", bbox)) if v is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give at most one region source")
    needs = [("--vector-layer", vector_layer, vector, "--vector"), ("--bbox-crs", bbox_crs, bbox, "--bbox"),
             ("--per-feature", per_feature or None, vector, "--vector"), ("--feature-id", feature_id, per_feature or None, "--per-feature")]
    for opt, value, other, name in needs:
        if value is not None and other is None:
            raise UsageError(f"{opt} needs {name}")
    if clip and not given:
        raise UsageError("--clip-to-region needs a region (--bbox, --vector or --region-mask)")
    clip = bool(given) if clip is None else bool(clip)
    if region_mask is not None:
        return RegionSpec("mask", str(region_mask), clip=clip)
    if vector is not None:
        return RegionSpec("vector", str(vector), vector_layer, clip=clip, per_feature=bool(per_feature),
                          feature_id=feature_id)
    if bbox is not None:
        return RegionSpec("bbox", bbox=parse_bbox(bbox), bbox_crs=str(bbox_crs) if bbox_crs else None, clip=clip)
    return RegionSpec()


# ----------------------------------------------------------------------------- the options
@dataclass(frozen=True)
class ExplainOptions:
    """Every option of an explain run. After :func:`bind_options` no field is None except ``autocast``."""

    methods: tuple[str, ...]
    layers: tuple[str, ...]  # layer specs ('a+b' averaged); one output band per method and spec
    target_class: Union[int, str, None] = None
    class_name: Optional[str] = None
    bands: Optional[tuple[Union[int, str], ...]] = None  # numbers, or names resolved per scene
    tile_size: Optional[int] = None
    overlap: float = 0.25
    normalize: str = "scene"
    use_probs: bool = False
    batch_size: Optional[int] = None
    device: str = "auto"
    autocast: Optional[str] = None
    region: RegionSpec = field(default_factory=RegionSpec)
    compress: str = "deflate"
    quicklook: Optional[bool] = None  # PNG quicklooks: None = for scenes up to a size cap (outputs/quicklook.py)
    assets: Optional[tuple[str, ...]] = None  # STAC inputs: the assets stacked as the scene's bands
    blackbox: BlackBoxOptions = field(default_factory=BlackBoxOptions)  # rise / occlusion

    @property
    def bound(self) -> bool:
        return self.class_name is not None

    @property
    def bands_out(self) -> list[tuple[str, str]]:
        """(method, layer spec) of each output band, band 1 first."""
        return [(m, layer) for layer in self.layers for m in self.methods]

    @property
    def band_names(self) -> list[str]:
        if len(self.layers) == 1:
            return list(self.methods)
        return [f"{m}@{layer}" for m, layer in self.bands_out]

    @property
    def overlap_px(self) -> int:
        """``--overlap 0.25`` means a quarter of the tile; kept even so blending windows stay symmetric."""
        return int(round(int(self.tile_size) * self.overlap / 2)) * 2

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = self.region.describe()
        d["blackbox"] = self.blackbox.record(self.methods)
        if not d["blackbox"]:
            del d["blackbox"]  # CAM-only runs keep their fingerprint
        return d

    def key(self, model_sha256: Optional[str]) -> str:
        """Fingerprint of what determines the outputs (not batch size, device, compression or quicklooks)."""
        d = {k: v for k, v in self.record().items() if k not in ("batch_size", "device", "compress", "quicklook")}
        d["model_sha256"] = model_sha256
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:16]


def resolve_options(
    *,
    methods: Union[str, Sequence[str], None] = None,
    layer: Union[str, Sequence[str], None] = None,
    target_class: Union[int, str, None] = None,
    bands: Union[str, Sequence[int], None] = None,
    tile_size: Optional[int] = None,
    overlap: float = 0.25,
    normalize: str = "scene",
    use_probs: bool = False,
    batch_size: Optional[int] = None,
    device: str = "auto",
    autocast: Optional[str] = None,
    region_mask: Any = None,
    vector: Any = None,
    vector_layer: Optional[str] = None,
    bbox: Any = None,
    bbox_crs: Optional[str] = None,
    clip_to_region: Optional[bool] = None,
    per_feature: bool = False,
    feature_id: Optional[str] = None,
    compress: str = "deflate",
    quicklook: Optional[bool] = None,
    assets: Union[str, Sequence[str], None] = None,
    rise_masks: int = 2000,
    rise_cells: int = 8,
    rise_p: float = 0.5,
    occlusion_window: int = 32,
    occlusion_stride: int = 16,
    baseline: float = 0.0,
    seed: int = 0,
) -> ExplainOptions:
    """Check every option that needs no model (see the module docstring)."""
    normalize = (normalize or "scene").lower()
    if normalize not in NORMALIZE_MODES:
        raise UsageError(f"--normalize {normalize!r}: expected one of {', '.join(NORMALIZE_MODES)}")
    if tile_size is not None and not MIN_TILE <= int(tile_size) <= MAX_TILE:
        raise UsageError(f"--tile-size {tile_size}: expected {MIN_TILE}..{MAX_TILE} pixels")
    try:
        overlap = float(overlap)
    except (TypeError, ValueError):
        raise UsageError(f"--overlap {overlap!r}: expected a fraction of the tile in [0, 0.9)") from None
    if not 0 <= overlap < 0.9:
        raise UsageError(f"--overlap {overlap}: expected a fraction of the tile in [0, 0.9)")
    if batch_size is not None and int(batch_size) < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")
    autocast = None if autocast in (None, "none", "", False) else str(autocast).lower()
    if autocast is not None and autocast not in AUTOCAST_MODES:
        raise UsageError(f"--autocast {autocast!r}: expected none, bf16 or fp16")
    compress = (compress or "deflate").lower()
    if compress not in COMPRESSIONS:
        raise UsageError(f"--compress {compress!r}: expected one of {', '.join(COMPRESSIONS)}")
    parsed_bands = parse_band_selection(bands)
    parsed_assets = parse_names(assets, "--assets")
    if isinstance(target_class, str) and not target_class.strip():
        raise UsageError("--class: empty")
    return ExplainOptions(
        methods=tuple(resolve_methods(methods)),
        layers=tuple(parse_layers(layer)),
        target_class=target_class,
        bands=tuple(parsed_bands) if parsed_bands else None,
        tile_size=int(tile_size) if tile_size is not None else None,
        overlap=overlap,
        normalize=normalize,
        use_probs=bool(use_probs),
        batch_size=int(batch_size) if batch_size is not None else None,
        device=str(device or "auto"),
        autocast=autocast,
        region=resolve_region(region_mask, vector, vector_layer, bbox, bbox_crs, clip_to_region, per_feature,
                              feature_id),
        compress=compress,
        quicklook=None if quicklook is None else bool(quicklook),
        assets=tuple(parsed_assets) if parsed_assets else None,
        blackbox=BlackBoxOptions(int(rise_masks), int(rise_cells), float(rise_p), int(occlusion_window),
                                 int(occlusion_stride), float(baseline), int(seed)),
    )


def bind_options(opts: ExplainOptions, info: "ModelInfo", model: "nn.Module", device: str) -> ExplainOptions:
    """Check the options against the loaded model and fill in its defaults (tile, bands, class…)."""
    from segxai_cli.cam.engine import layer_refs
    from segxai_cli.model.checkpoint import check_tile_size, require_band_stats

    require_band_stats(info)
    cls_idx, cls_name = info.resolve_class(opts.target_class)
    bands = list(opts.bands or info.bands or range(1, info.in_channels + 1))
    if len(bands) != info.in_channels:
        raise UsageError(
            f"-b/--bidx {','.join(map(str, bands))}: the model takes {info.in_channels} band(s), {len(bands)} selected"
        )
    tile = int(opts.tile_size or info.tile_size)
    check_tile_size(tile, model, "--tile-size" if opts.tile_size else f"{info.path}: checkpoint tile_size")
    layers = opts.layers
    if layer_free(opts.methods):
        layers = ("input",)  # model-agnostic methods perturb the input: no layer
    else:
        for spec in layers:
            layer_refs(model, layer_names(spec), opts.methods)
    batch = opts.batch_size or (16 if device.startswith("cuda") else 4)
    return replace(opts, target_class=cls_idx, class_name=cls_name, bands=tuple(bands), tile_size=tile,
                   batch_size=batch, device=device, layers=layers)
