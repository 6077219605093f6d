"""Options of the model-agnostic methods (RISE, occlusion), checked without torch.

One frozen value carried from the command line to the engine, where :meth:`BlackBoxOptions.opts`
becomes ``explain_batch``'s keyword options. The baseline is in *normalised* space: 0 is each
band's mean (the value a removed pixel takes), the same for every band.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from segxai_cli.errors import UsageError


@dataclass(frozen=True)
class BlackBoxOptions:
    rise_masks: int = 2000  # N random masks per tile
    rise_cells: int = 8  # the masks' grid: s x s cells over the tile
    rise_p: float = 0.5  # probability that a cell is kept
    occlusion_window: int = 32  # patch side in pixels
    occlusion_stride: int = 16  # patch step in pixels
    baseline: float = 0.0  # value of removed pixels, normalised space (0 = band mean)
    seed: int = 0  # RISE masks
    chunk: Optional[int] = None  # perturbed images per model forward (None: 32 on a GPU, cache-sized on a CPU)

    def __post_init__(self) -> None:
        checks = (
            (self.rise_masks >= 1, f"--rise-masks {self.rise_masks}: must be at least 1"),
            (2 <= self.rise_cells <= 256, f"--rise-cells {self.rise_cells}: expected 2..256"),
            (0 < self.rise_p < 1, f"--rise-p {self.rise_p}: expected a probability in (0, 1)"),
            (self.occlusion_window >= 1, f"--occlusion-window {self.occlusion_window}: must be at least 1 pixel"),
            (1 <= self.occlusion_stride, f"--occlusion-stride {self.occlusion_stride}: must be at least 1 pixel"),
            (self.baseline == self.baseline and abs(self.baseline) < 1e6, f"--baseline {self.baseline}: expected a finite number"),
            (self.chunk is None or self.chunk >= 1, f"perturbation chunk {self.chunk}: must be at least 1"),
        )
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def opts(self) -> dict[str, Any]:
        """``explain_batch`` keyword options."""
        d = asdict(self)
        d["rise_seed"] = d.pop("seed")
        d["perturb_chunk"] = d.pop("chunk")
        return d

    def record(self, methods) -> dict[str, Any]:
        """What a run record says: only the options of the methods that ran."""
        d = {}
        if "rise" in methods:
            d.update(rise_masks=self.rise_masks, rise_cells=self.rise_cells, rise_p=self.rise_p, seed=self.seed)
        if "occlusion" in methods:
            d.update(occlusion_window=self.occlusion_window, occlusion_stride=self.occlusion_stride)
        if d:
            d["baseline"] = self.baseline
        return d
