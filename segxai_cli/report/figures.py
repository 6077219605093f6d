"""The study's figures for the report, drawn with :mod:`segxai_cli.evaluation.plots` and embedded as
``data:`` URIs (the report stays one file that needs no network)."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from segxai_cli.report.gather import Study


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def study_figures(study: Study) -> list[tuple[str, str]]:
    """(caption, data URI) of every figure of one study."""
    from segxai_cli.evaluation.plots import plot_curves, plot_evaluate, plot_sweep

    out = []
    with tempfile.TemporaryDirectory(prefix="segxai-report-") as tmp:
        png = Path(tmp) / "figure.png"
        if study.command == "threshold-sweep":
            plot_sweep(study.summary, png)
            out.append(("Each metric against the threshold t (Φ = S ≥ t): one line per method, line style per layer.",
                        data_uri(png)))
        else:
            for t in sorted({r["threshold"] for r in study.summary}):
                plot_evaluate([r for r in study.summary if r["threshold"] == t], png, title=f"t = {t:g}")
                out.append((f"M1/M2/M3 and IoU change per method (colour per layer) at t = {t:g}; error bars: "
                            "one standard deviation across tiles.", data_uri(png)))
        if study.curves:
            plot_curves(study.curves, png)
            out.append(("Deletion and insertion curves: confidence on the target while the most salient pixels "
                        "are removed (inserted); shaded: ± one standard deviation across tiles.", data_uri(png)))
    return out
