"""The health report as one self-contained HTML file: inline PNG plots (matplotlib, Agg), the images
each finding names, and inline JPEG thumbnails of duplicate pairs side by side with their annotations'
boxes drawn (so "same file, different labels" can be compared by eye). No external files, scripts or
fonts."""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.health.load import image_boxes
from visionloop.health.result import DuplicatePair, HealthReport
from visionloop.store.project import Store

log = logging.getLogger(__name__)

MAX_HEATMAPS = 24
MAX_PAIRS = 24
THUMB_HEIGHT = 140


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # Figure without pyplot: Agg, no global state
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(r: HealthReport) -> dict[str, str]:
    from matplotlib.figure import Figure

    def subplots(figsize: tuple[float, float], rows: int = 1, cols: int = 1) -> tuple[Any, Any]:
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(rows, cols, squeeze=False) if rows * cols > 1 else fig.subplots()

    out: dict[str, str] = {}
    if r.classes:
        splits = list(r.counts["by_split"])
        fig, ax = subplots((7, 0.3 * len(r.classes) + 1.2))
        left = np.zeros(len(r.classes))
        for s in splits:
            v = np.array([c.by_split.get(s, 0) for c in r.classes], dtype=float)
            ax.barh([c.name for c in r.classes], v, left=left, label=s)
            left += v
        ax.invert_yaxis()
        ax.set_xlabel("annotations")
        ax.legend(fontsize=8)
        ax.set_title("class balance by split")
        out["balance"] = _png(fig)
    scatter = r.dimensions.get("scatter") or []
    if scatter:
        a = np.array(scatter, dtype=float)
        fig, ax = subplots((5, 4))
        ax.scatter(a[:, 0], a[:, 1], s=8 + 40 * np.sqrt(a[:, 2] / a[:, 2].max()), alpha=0.6)
        ax.set_xlabel("width (px)")
        ax.set_ylabel("height (px)")
        ax.set_title("image sizes (dot area: how many)")
        out["dimensions"] = _png(fig)
    for key, title, data in (("objects", "objects per image", r.objects_per_image.get("histogram", {})),
                             ("sides", "box size (√(w·h), px)", r.box_sizes.get("side_px_histogram", {})),
                             ("relative", "box size relative to the image",
                              r.box_sizes.get("relative_side_histogram", {}))):
        if data:
            fig, ax = subplots((5, 3))
            ax.bar(list(data), list(data.values()))
            ax.set_title(title)
            ax.tick_params(axis="x", labelrotation=60, labelsize=7)
            out[key] = _png(fig)
    maps = list(r.heatmaps.items())[:MAX_HEATMAPS]
    if maps:
        cols = min(6, len(maps))
        rows = (len(maps) + cols - 1) // cols
        fig, axes = subplots((2.2 * cols, 2.2 * rows), rows, cols)
        axes = np.atleast_2d(axes)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (name, grid) in zip(axes.ravel(), maps, strict=False):
            ax.imshow(np.array(grid), cmap="magma", extent=(0, 1, 1, 0))
            ax.set_title(name, fontsize=8)
        out["heatmaps"] = _png(fig)
    return out


Boxes = tuple[int, list[tuple[float, float, float, float, str]]]  # upright image height, boxes with class names
BOX_COLOUR = (0, 0, 255)  # BGR: red


def scaled_boxes(boxes: Boxes | None, thumb_height: int) -> list[tuple[int, int, int, int, str]]:
    """Boxes in thumbnail pixels (the thumbnail is the upright image scaled to `thumb_height`)."""
    if not boxes or boxes[0] <= 0:
        return []
    s = thumb_height / boxes[0]
    return [(round(x0 * s), round(y0 * s), round(x1 * s), round(y1 * s), name) for x0, y0, x1, y1, name in boxes[1]]


def thumbnail(data: bytes, boxes: Boxes | None = None) -> np.ndarray | None:
    """The image at THUMB_HEIGHT px high (upright), with its annotations' boxes and class names drawn."""
    import cv2

    buf = np.frombuffer(data, np.uint8)
    head = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_8)
    img = head if head is not None and head.shape[0] >= THUMB_HEIGHT else cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        return None
    scale = THUMB_HEIGHT / img.shape[0]
    img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
    for x0, y0, x1, y1, name in scaled_boxes(boxes, THUMB_HEIGHT):
        cv2.rectangle(img, (x0, y0), (x1, y1), BOX_COLOUR, 2)
        cv2.putText(img, name[:16], (x0 + 2, max(y0 + 10, 10)), cv2.FONT_HERSHEY_PLAIN, 0.7, BOX_COLOUR, 1,
                    cv2.LINE_AA)
    return img


def _thumb(store: Store, sha: str, boxes: Boxes | None = None, image_id: int | None = None) -> str:
    import cv2

    from visionloop.versions.redact import image_bytes

    # an image with blur regions is shown blurred (upright, as its boxes are)
    img = thumbnail(image_bytes(store, image_id)[0] if image_id is not None else store.blobs.get(sha), boxes)
    if img is None:
        return ""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _pair_html(store: Store, p: DuplicatePair, boxes: dict[int, Boxes] | None = None) -> str:
    e = html.escape
    boxes = boxes or {}
    label = {"exact": "same file", "pixels": "same pixels", "near": f"near ({p.distance} bits)",
             "similar": f"look-alike, not a copy ({p.distance} bits)"}[p.kind] + (" · flipped" if p.mirrored else "")
    warn = " leak" if p.cross_split and p.kind != "similar" else ""
    return (f'<div class="pair{warn}"><div class="cap">{e(label)}{" · different splits" if p.cross_split else ""}'
            f'{" · different labels" if p.same_annotations is False and p.kind != "near" else ""}</div>'
            f'<figure><img src="{_thumb(store, p.sha_a, boxes.get(p.image_a), p.image_a)}" alt=""><figcaption>{e(p.a)} '
            f'({e(p.split_a)})</figcaption></figure><figure><img src="{_thumb(store, p.sha_b, boxes.get(p.image_b), p.image_b)}"'
            f' alt=""><figcaption>{e(p.b)} ({e(p.split_b)})</figcaption></figure></div>')


def _images_cell(f: Any) -> str:
    e = html.escape
    if not f.images:
        return ""
    more = " …" if f.count > len(f.images) and len(f.images) >= 10 else ""
    return "<br>".join(e(n) for n in f.images) + more


CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.error{color:#b00020}.warning{color:#a65e00}.info{color:#555}.plots img{margin:4px;vertical-align:top}
.pair{display:inline-block;border:1px solid #ddd;margin:4px;padding:4px}.pair.leak{border-color:#b00020}
figure{display:inline-block;margin:2px}figcaption{font-size:11px;max-width:220px;word-break:break-all}
.cap{font-size:12px;font-weight:600}.imgs{font-size:11px;word-break:break-all;max-width:260px}"""


def render_html(report: HealthReport, store: Store) -> str:
    e = html.escape
    c = report.counts
    figs = _figures(report)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>visionloop health</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Dataset health{' — split ' + e(report.split) if report.split else ''}</h1>",
             f"<p>{c['images']} images ({c['distinct_files']} distinct files), {c['annotations']} annotations, "
             + (f"{c['captions']} captions, " if c.get("captions") else "") +
             f"{c['classes']} classes. Label state: {c['annotated']} annotated, {c['null']} empty (null), "
             f"{c['missing']} never labelled (missing).</p>",
             "<h2>Findings</h2><table><tr><th>severity</th><th>check</th><th>count</th><th>what to do</th>"
             "<th>images</th><th>fix</th></tr>"]
    for f in report.findings:
        parts.append(f"<tr class='{f.severity.value}'><td>{f.severity.value}</td><td>{e(f.check)}</td>"
                     f"<td>{f.count}</td><td>{e(f.message)}</td><td class='imgs'>{_images_cell(f)}</td>"
                     f"<td>{'visionloop fix' if f.fixable else ''}</td></tr>")
    parts.append("</table><h2>Splits</h2><table><tr><th>split</th><th>images</th><th>annotations</th>"
                 "<th>annotated</th><th>null</th><th>missing</th></tr>")
    for s, d in c["by_split"].items():
        parts.append(f"<tr><td>{e(s)}</td><td>{d['images']}</td><td>{d['annotations']}</td><td>{d['annotated']}</td>"
                     f"<td>{d['null']}</td><td>{d['missing']}</td></tr>")
    parts.append("</table><h2>Classes</h2><table><tr><th>class</th><th>annotations</th><th>images</th>"
                 "<th>verdict</th></tr>")
    for cb in report.classes:
        parts.append(f"<tr><td>{e(repr(cb.name))}</td><td>{cb.annotations}</td><td>{cb.images}</td>"
                     f"<td>{e(cb.verdict)}</td></tr>")
    parts.append("</table><div class='plots'>")
    for key in ("balance", "dimensions", "objects", "sides", "relative"):
        if key in figs:
            parts.append(f"<img src='{figs[key]}' alt='{key}'>")
    parts.append("</div>")
    if "heatmaps" in figs:
        parts.append("<h2>Where box centres sit in the frame, per class</h2>"
                     f"<div class='plots'><img src='{figs['heatmaps']}' alt='heatmaps'></div>")
    t = report.tiny_objects
    parts.append(f"<p>Tiny objects at input {t['input_size']}: {t['count']} ({t['fraction']:.1%}).</p>")
    shown = sorted(report.pairs, key=lambda p: (p.kind == "similar", not p.cross_split, p.kind != "exact",
                                                p.distance))[:MAX_PAIRS]
    if shown:
        parts.append(f"<h2>Duplicates ({len(report.pairs)} pairs; {len(shown)} shown, leaks first)</h2>")
        # the project's annotations drawn on the thumbnails (a version's items are not image rows)
        boxes = image_boxes(store, sorted({i for p in shown for i in (p.image_a, p.image_b)})) \
            if report.version is None else {}
        parts += [_pair_html(store, p, boxes) for p in shown]
    parts.append("</body></html>")
    return "".join(parts)


def write_html(report: HealthReport, store: Store, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, store), encoding="utf-8")
    log.info("wrote the health report to %s", path)
    return path
