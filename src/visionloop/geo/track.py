"""GPS points of street photos (EXIF, or a sidecar GPX/CSV), sequences, GeoJSON and a self-contained HTML map."""

from __future__ import annotations

import csv
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.formats.images import _ratio, header_exif, probe

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
EARTH_RADIUS = 6_378_137.0  # WGS84 semi-major axis, metres


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """Where one photo was taken."""

    name: str  # file name, relative to the folder
    lat: float | None
    lon: float | None
    alt: float | None = None
    heading: float | None = None
    time: str | None = None  # ISO 8601
    dop: float | None = None  # EXIF GPSDOP (dilution of precision)
    source: str = "exif"  # exif | sidecar | none

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


def _dop(data: bytes) -> float | None:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            ifd = header_exif(im).get_ifd(0x8825)
    except Exception:  # noqa: BLE001 - broken EXIF: no DOP
        return None
    if not ifd or 11 not in ifd:
        return None
    value = _ratio(ifd[11])
    return None if math.isnan(value) else value


def read_folder(folder: str | Path, *, sidecar: str | Path | None = None) -> list[GeoPoint]:
    """Every image under folder (sorted by name) with its EXIF GPS, heading, time and DOP; a sidecar GPX/CSV
    fills in the images with no EXIF GPS (by file name for CSV, by nearest time for GPX)."""
    root = Path(folder)
    if not root.is_dir():
        raise VisionLoopError("not a folder of images", path=root, hint="give the folder that holds the photos")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXT and p.is_file())
    if not files:
        raise VisionLoopError("no images in the folder", path=root, hint="jpg/png/tif/webp files are read")
    points = []
    for f in files:
        data = f.read_bytes()
        info = probe(data, path=f)
        name = f.relative_to(root).as_posix()
        if info.gps is not None:
            points.append(GeoPoint(name, info.gps.latitude, info.gps.longitude, info.gps.altitude, info.heading,
                                   info.timestamp, _dop(data)))
        else:
            points.append(GeoPoint(name, None, None, time=info.timestamp, source="none"))
    if sidecar is not None:
        points = apply_sidecar(points, sidecar)
    return points


def apply_sidecar(points: list[GeoPoint], sidecar: str | Path) -> list[GeoPoint]:
    """Fill the points with no GPS from a CSV (columns name,lat,lon[,alt,heading,time,dop]) or a GPX track
    (trkpt with <time>, matched to the photo's capture time; interpolated between the two nearest fixes)."""
    path = Path(sidecar)
    if not path.is_file():
        raise VisionLoopError("sidecar file not found", path=path)
    if path.suffix.lower() == ".gpx":
        return _apply_gpx(points, path)
    if path.suffix.lower() == ".csv":
        return _apply_csv(points, path)
    raise VisionLoopError("unknown sidecar format", path=path, hint="use a .gpx track or a .csv with name,lat,lon")


def _num(row: dict[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    return float(text) if text else None


def _apply_csv(points: list[GeoPoint], path: Path) -> list[GeoPoint]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"name", "lat", "lon"} - set(reader.fieldnames or [])
        if missing:
            raise VisionLoopError(f"sidecar CSV lacks column(s) {sorted(missing)}", path=path,
                                  hint="header: name,lat,lon[,alt,heading,time,dop]")
        rows = {}
        for line, row in enumerate(reader, start=2):
            try:
                rows[row["name"].strip()] = (float(row["lat"]), float(row["lon"]), _num(row, "alt"),
                                             _num(row, "heading"), (row.get("time") or "").strip() or None,
                                             _num(row, "dop"))
            except (TypeError, ValueError):
                raise VisionLoopError(f"line {line}: lat/lon is not a number", path=path) from None
    out = []
    for p in points:
        hit = rows.get(p.name) or rows.get(Path(p.name).name)
        if not p.located and hit:
            lat, lon, alt, heading, time, dop = hit
            p = GeoPoint(p.name, lat, lon, alt, heading, time or p.time, dop, "sidecar")
        out.append(p)
    return out


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _apply_gpx(points: list[GeoPoint], path: Path) -> list[GeoPoint]:
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise VisionLoopError(f"not a readable GPX file ({e})", path=path) from None
    fixes = []
    for el in tree.iter():
        if el.tag.rsplit("}", 1)[-1] not in ("trkpt", "wpt", "rtept"):
            continue
        t = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "time"), None)
        ele = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "ele"), None)
        ts = _parse_time(t)
        # EXIF times carry no zone: compare GPX times as naive UTC wall-clock
        if t and ts is not None:
            ts = _parse_time(t.replace("Z", "").split("+")[0])
        if ts is not None:
            fixes.append((ts, float(el.attrib["lat"]), float(el.attrib["lon"]), float(ele) if ele else None))
    if not fixes:
        raise VisionLoopError("GPX has no timed track points", path=path, hint="a <trkpt> needs a <time>")
    fixes.sort()
    out = []
    for p in points:
        ts = _parse_time(p.time)
        if p.located or ts is None or not fixes[0][0] <= ts <= fixes[-1][0]:
            out.append(p)
            continue
        j = next(i for i, f in enumerate(fixes) if f[0] >= ts)
        a, b = fixes[max(j - 1, 0)], fixes[j]
        w = 0.0 if b[0] == a[0] else (ts - a[0]) / (b[0] - a[0])
        alt = None if a[3] is None or b[3] is None else a[3] + w * (b[3] - a[3])
        out.append(replace(p, lat=a[1] + w * (b[1] - a[1]), lon=a[2] + w * (b[2] - a[2]), alt=alt,
                           source="sidecar"))
    return out


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)  # type: ignore[arg-type]
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)  # type: ignore[operator]
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(math.sqrt(h))


def track_length(seq: list[GeoPoint]) -> float:
    """Metres along the sequence, fix to fix."""
    return sum(distance_m(a, b) for a, b in zip(seq, seq[1:], strict=False))


def sequences(points: list[GeoPoint], *, max_gap_s: float = 60.0, max_step_m: float = 50.0) -> list[list[GeoPoint]]:
    """Located points in capture order (time, then name) cut into sequences wherever two neighbours are more
    than max_gap_s apart in time (when both have a time) or more than max_step_m apart in space."""
    located = [p for p in points if p.located]
    located.sort(key=lambda p: (_parse_time(p.time) or 0.0, p.name))
    out: list[list[GeoPoint]] = []
    for p in located:
        if out:
            prev = out[-1][-1]
            t0, t1 = _parse_time(prev.time), _parse_time(p.time)
            gap = t0 is not None and t1 is not None and abs(t1 - t0) > max_gap_s
            if not gap and distance_m(prev, p) <= max_step_m:
                out[-1].append(p)
                continue
        out.append([p])
    return out


def summary(points: list[GeoPoint], seqs: list[list[GeoPoint]]) -> dict[str, Any]:
    """GPS coverage and the sequences: {images, located, from_sidecar, with_heading, with_time, with_dop,
    sequences: [{sequence, images, first, last, length_m}], unlocated: [names]}."""
    return {
        "images": len(points), "located": sum(p.located for p in points),
        "from_sidecar": sum(p.source == "sidecar" for p in points),
        "with_heading": sum(p.heading is not None for p in points),
        "with_time": sum(p.time is not None for p in points), "with_dop": sum(p.dop is not None for p in points),
        "sequences": [{"sequence": i, "images": len(s), "first": s[0].name, "last": s[-1].name,
                       "length_m": round(track_length(s), 2)}
                      for i, s in enumerate(seqs)],
        "unlocated": [p.name for p in points if not p.located],
    }


def to_enu(lat: float, lon: float, alt: float | None, origin: tuple[float, float, float]) -> tuple[float, float, float]:
    """East-north-up metres around origin (lat, lon, alt), via ECEF (exact for the WGS84 ellipsoid)."""
    def ecef(la: float, lo: float, h: float) -> tuple[float, float, float]:
        e2 = 6.69437999014e-3
        phi, lam = math.radians(la), math.radians(lo)
        n = EARTH_RADIUS / math.sqrt(1 - e2 * math.sin(phi) ** 2)
        return ((n + h) * math.cos(phi) * math.cos(lam), (n + h) * math.cos(phi) * math.sin(lam),
                (n * (1 - e2) + h) * math.sin(phi))
    x, y, z = ecef(lat, lon, alt or 0.0)
    x0, y0, z0 = ecef(*origin)
    dx, dy, dz = x - x0, y - y0, z - z0
    phi, lam = math.radians(origin[0]), math.radians(origin[1])
    e = -math.sin(lam) * dx + math.cos(lam) * dy
    n = -math.sin(phi) * math.cos(lam) * dx - math.sin(phi) * math.sin(lam) * dy + math.cos(phi) * dz
    u = math.cos(phi) * math.cos(lam) * dx + math.cos(phi) * math.sin(lam) * dy + math.sin(phi) * dz
    return e, n, u


def from_enu(e: float, n: float, u: float, origin: tuple[float, float, float]) -> tuple[float, float, float]:
    """Inverse of to_enu (a few fixed-point steps; sub-millimetre over a street)."""
    lat, lon, alt = origin
    for _ in range(4):
        e1, n1, u1 = to_enu(lat, lon, alt, origin)
        lat += math.degrees((n - n1) / EARTH_RADIUS)
        lon += math.degrees((e - e1) / (EARTH_RADIUS * math.cos(math.radians(lat))))
        alt += u - u1
    return lat, lon, alt


def geojson(points: list[GeoPoint], seqs: list[list[GeoPoint]] | None = None) -> dict[str, Any]:
    """A FeatureCollection: one Point per located image (its properties: name, sequence, heading, time, dop,
    source) and one LineString per sequence of two or more images."""
    seqs = sequences(points) if seqs is None else seqs
    seq_of = {p.name: i for i, s in enumerate(seqs) for p in s}
    feats: list[dict[str, Any]] = []
    for p in points:
        if not p.located:
            continue
        coords = [p.lon, p.lat] + ([p.alt] if p.alt is not None else [])
        props = {k: v for k, v in asdict(p).items() if k not in ("lat", "lon", "alt")}
        props["sequence"] = seq_of.get(p.name)
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": coords}, "properties": props})
    for i, s in enumerate(seqs):
        if len(s) >= 2:
            feats.append({"type": "Feature", "geometry": {"type": "LineString",
                                                          "coordinates": [[p.lon, p.lat] for p in s]},
                          "properties": {"sequence": i, "images": len(s), "first": s[0].name, "last": s[-1].name,
                                         "length_m": round(track_length(s), 2)}})
    return {"type": "FeatureCollection", "features": feats}


_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>visionloop map</title>
<style>body{margin:0;font:13px sans-serif}#c{width:100vw;height:100vh;display:block;background:#f4f4f0}
#tip{position:fixed;left:8px;top:8px;background:#fffd;padding:4px 8px;border:1px solid #999}</style></head>
<body><canvas id="c"></canvas><div id="tip">__TITLE__</div><script>
const G=__DATA__;const c=document.getElementById('c'),x=c.getContext('2d'),tip=document.getElementById('tip');
const cols=['#d62728','#1f77b4','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#17becf'];
let pts=[],lines=[];for(const f of G.features){if(f.geometry.type=='Point')pts.push(f);else lines.push(f);}
const all=pts.map(f=>f.geometry.coordinates);let W,H,sc,ox,oy,lat0;
function fit(){W=c.width=innerWidth;H=c.height=innerHeight;lat0=all.reduce((s,p)=>s+p[1],0)/all.length;
const k=Math.cos(lat0*Math.PI/180);const xs=all.map(p=>p[0]*k),ys=all.map(p=>p[1]);
const x0=Math.min(...xs),x1=Math.max(...xs),y0=Math.min(...ys),y1=Math.max(...ys);
sc=0.85*Math.min(W/Math.max(x1-x0,1e-9),H/Math.max(y1-y0,1e-9));ox=W/2-sc*(x0+x1)/2;oy=H/2+sc*(y0+y1)/2;}
function P(p){return[ox+sc*p[0]*Math.cos(lat0*Math.PI/180),oy-sc*p[1]];}
function draw(){x.clearRect(0,0,W,H);x.lineWidth=3;for(const l of lines){x.strokeStyle=cols[l.properties.sequence%8];
x.beginPath();l.geometry.coordinates.forEach((p,i)=>{const q=P(p);i?x.lineTo(...q):x.moveTo(...q);});x.stroke();}
for(const f of pts){const q=P(f.geometry.coordinates),s=f.properties.sequence;
if(f.properties.layer=='feature'){x.fillStyle='#111';x.beginPath();x.moveTo(q[0],q[1]-7);x.lineTo(q[0]+7,q[1]);
x.lineTo(q[0],q[1]+7);x.lineTo(q[0]-7,q[1]);x.fill();x.fillText(f.properties.class??'',q[0]+9,q[1]+4);continue;}
x.fillStyle=cols[(s??0)%8];
x.beginPath();x.arc(q[0],q[1],5,0,7);x.fill();const h=f.properties.heading;if(h!=null){const a=h*Math.PI/180;
x.strokeStyle='#333';x.lineWidth=1;x.beginPath();x.moveTo(...q);x.lineTo(q[0]+12*Math.sin(a),q[1]-12*Math.cos(a));x.stroke();}}
const m=50*sc/111320;x.fillStyle='#000';x.fillRect(10,H-20,m,3);x.fillText('50 m',10,H-25);}
function near(e){let best=null,d=64;for(const f of pts){const q=P(f.geometry.coordinates);
const dd=(q[0]-e.clientX)**2+(q[1]-e.clientY)**2;if(dd<d){d=dd;best=f;}}return best;}
c.onmousemove=e=>{const best=near(e),p=best&&best.properties;c.style.cursor=p&&p.href?'pointer':'';
tip.textContent=best?(p.layer=='feature'?(p.class??'')+' (map feature)':p.name+' seq '+p.sequence)+' '+best.geometry.coordinates.slice(0,2).map(v=>v.toFixed(6)).join(', '):'__TITLE__';};
c.onclick=e=>{const best=near(e);if(best&&best.properties.href)top.location.href=best.properties.href;};
function redraw(){if(innerWidth&&innerHeight){fit();draw();}}
new ResizeObserver(redraw).observe(document.documentElement);redraw();</script></body></html>
"""


def map_html(collection: dict[str, Any], *, title: str = "visionloop map") -> str:
    """A self-contained HTML page (canvas, inline script, no network) drawing the collection's sequences and
    points, heading ticks, a 50 m scale bar, and the image name under the pointer. A Point whose properties
    have `layer: "feature"` is drawn as a black diamond labelled with its `class` (a map feature); a click on a
    point with an `href` property opens that address in the top window (the web UI's image page)."""
    if not any(f["geometry"]["type"] == "Point" for f in collection["features"]):
        raise VisionLoopError("no located images to draw", hint="the images carry no GPS; give a --sidecar GPX/CSV")
    data = json.dumps(collection, separators=(",", ":")).replace("</", "<\\/")
    return _HTML.replace("__DATA__", data).replace("__TITLE__", title.replace("<", "&lt;"))
