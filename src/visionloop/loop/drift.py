"""Drift at a glance: the prediction log's stats as one figure (PNG) or a page (HTML, the figure inline + tables).

    from visionloop.store import prediction_log as plog
    write_plot(plog.stats(store, bucket="hour"), Path("drift.html"))

Three panels: images logged per bucket, the confidence histograms (every prediction, and each image's top one),
and the class mix per bucket as shares (a class that grows or vanishes shows as a band that widens or thins).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.store.prediction_log import PredictionStats

MAX_CLASSES = 12  # drawn one by one; the rest is one "other" band


def _figure(stats: PredictionStats) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 9), dpi=100, layout="constrained")
    vol, hist, mix = fig.subplots(3, 1)
    buckets = list(stats.volume)
    labels = [b[5:16].replace("T", " ") if stats.bucket == "hour" else b[:10] for b in buckets]
    x = list(range(len(buckets)))
    vol.bar(x, [stats.volume[b] for b in buckets], color="#4C72B0")
    vol.set(title=f"Images logged per {stats.bucket} (UTC), {stats.images} in all", ylabel="images")
    edges = stats.edges
    mids = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    width = 0.4 / stats.bins
    hist.bar([m - width / 2 for m in mids], stats.confidence_hist, width=width, label="every prediction")
    hist.bar([m + width / 2 for m in mids], stats.top_confidence_hist, width=width,
             label=f"top per image ({stats.no_prediction} images without a prediction)")
    hist.set(title="Confidence", xlabel="confidence", ylabel="count", xlim=(0, 1))
    hist.legend(fontsize=8)
    classes = stats.classes
    shown, rest = classes[:MAX_CLASSES], classes[MAX_CLASSES:]
    bottom = [0.0] * len(buckets)
    for c in [*shown, *(["other"] if rest else [])]:
        shares = []
        for b in buckets:
            m = stats.class_mix[b]
            total = sum(m.values())
            n = sum(m.get(r, 0) for r in rest) if c == "other" and rest else m.get(c, 0)
            shares.append(n / total if total else 0.0)
        mix.bar(x, shares, bottom=bottom, label=c)
        bottom = [a + b for a, b in zip(bottom, shares, strict=True)]
    mix.set(title=f"Class mix per {stats.bucket} (share of predictions)", ylabel="share", ylim=(0, 1))
    if classes:
        mix.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    step = max(1, len(x) // 12)
    for ax in (vol, mix):
        ax.set_xticks(x[::step], labels[::step], rotation=30, ha="right", fontsize=8)
    return fig


def png_bytes(stats: PredictionStats) -> bytes:
    buf = io.BytesIO()
    _figure(stats).savefig(buf, format="png")
    return buf.getvalue()


def render_html(stats: PredictionStats) -> str:
    e = html.escape
    img = base64.b64encode(png_bytes(stats)).decode()
    classes = stats.classes
    rows = "".join(f"<tr><td>{e(b)}</td><td>{n}</td>"
                   + "".join(f"<td>{stats.class_mix[b].get(c, 0)}</td>" for c in classes) + "</tr>"
                   for b, n in stats.volume.items())
    head = "".join(f"<th>{e(c)}</th>" for c in classes)
    hist = "".join(f"<tr><td>{a:.2f}–{b:.2f}</td><td>{n}</td><td>{t}</td></tr>"
                   for a, b, n, t in zip(stats.edges, stats.edges[1:], stats.confidence_hist,
                                         stats.top_confidence_hist, strict=False))
    models = "".join(f"<li>{e(m)}: {n}</li>" for m, n in stats.by_model.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>visionloop predictions</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
            f"<h1>Prediction log</h1><p>{stats.images} images, {stats.predictions} predictions, "
            f"{stats.no_prediction} images without a prediction</p><ul>{models}</ul>"
            f"<img alt='prediction log plots' src='data:image/png;base64,{img}'>"
            f"<h2>Per {stats.bucket} (UTC)</h2><table><tr><th>{stats.bucket}</th><th>images</th>{head}</tr>{rows}"
            "</table><h2>Confidence</h2><table><tr><th>bin</th><th>predictions</th><th>top per image</th></tr>"
            f"{hist}</table></body></html>")


def write_plot(stats: PredictionStats, path: str | Path) -> Path:
    """A PNG or an HTML page, by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise VisionLoopError(f"cannot plot to {path.name}: the file must end in .png or .html")
    if stats.images == 0:
        raise VisionLoopError("the prediction log has nothing to plot (no logged image matches)",
                              hint="start the server with --log-predictions RATE, or widen the filters")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        path.write_bytes(png_bytes(stats))
    else:
        path.write_text(render_html(stats), encoding="utf-8")
    return path
