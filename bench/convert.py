"""COCO → YOLO, COCO → VOC and COCO → COCO with visionloop and its peers, side by side in one run.

    python bench/convert.py --peers /path/to/python-with-peers      # 50k images / 500k boxes
    python bench/convert.py --peers … --images 5000 --repeat 1       # quick look
    python bench/convert.py --peers … --polygons 0.2                 # the variant with polygons on 20 %

The peers (datumaro, globox, supervision) are installed in a separate virtual
environment so they never touch visionloop's own dependencies:

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install datumaro globox supervision

Every tool runs in its own process (interpreter start and imports included, as
a user runs it), annotations only, output on a RAM disk (/dev/shm). visionloop
runs as a user runs it (one worker process per core, the source cut into parts)
and, as `visionloop-1`, in one process. The table prints the median wall time of
`--repeat` runs, the peak RSS of the tool's process (for visionloop plus its
workers' largest peak times their number: an upper bound, forked workers share
pages), its ratio to visionloop, and what the output got right:
annotation ids unique, COCO category ids kept, polygons kept, VOC pixel
convention (1-based: xmin = x + 1, per the VOC devkit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synth import coco_dataset  # noqa: E402

#: the tool process's own peak (VmHWM) plus, for worker processes it ran, the largest one's peak times their
#: number (an upper bound: forked workers share pages with their parent). Peers run in one process.
HWM = ("import pathlib, resource, multiprocessing as _mp\n"
       "own = int([l.split()[1] for l in pathlib.Path('/proc/self/status').read_text().splitlines() "
       "if l.startswith('VmHWM')][0])\n"
       "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
       "n = globals().get('WORKERS', 0)\n"
       "print('HWM', own + (kids * n if kids else 0))")

CODE = {
    ("visionloop", "yolo"): "from visionloop.formats.convert import convert; from visionloop.formats.parallel import "
                            "available_workers as w; WORKERS = w(); convert(SRC, OUT, to='yolo', images='none')",
    ("visionloop", "voc"): "from visionloop.formats.convert import convert; from visionloop.formats.parallel import "
                           "available_workers as w; WORKERS = w(); convert(SRC, OUT, to='voc', images='none')",
    ("visionloop", "coco"): "from visionloop.formats.convert import convert; from visionloop.formats.parallel import "
                            "available_workers as w; WORKERS = w(); convert(SRC, OUT, to='coco', images='none')",
    ("visionloop-1", "yolo"): "from visionloop.formats.convert import convert; "
                              "convert(SRC, OUT, to='yolo', images='none', workers=1)",
    ("visionloop-1", "voc"): "from visionloop.formats.convert import convert; "
                             "convert(SRC, OUT, to='voc', images='none', workers=1)",
    ("visionloop-1", "coco"): "from visionloop.formats.convert import convert; "
                              "convert(SRC, OUT, to='coco', images='none', workers=1)",
    ("globox", "yolo"): "from globox import AnnotationSet as A; a = A.from_coco(SRC); "
                        "a.save_yolo_v5(OUT, label_to_id={l: i for i, l in enumerate(sorted(a._labels()))})",
    ("globox", "voc"): "from globox import AnnotationSet as A; A.from_coco(SRC).save_pascal_voc(OUT)",
    ("globox", "coco"): "import os; from globox import AnnotationSet as A; os.makedirs(OUT); "
                        "A.from_coco(SRC).save_coco(OUT + '/annotations.json', auto_ids=True)",
    ("datumaro", "yolo"): "import datumaro as dm; dm.Dataset.import_from(ROOT, 'coco_instances')"
                          ".export(OUT, 'yolo', save_media=False)",
    ("datumaro", "voc"): "import datumaro as dm; dm.Dataset.import_from(ROOT, 'coco_instances')"
                         ".export(OUT, 'voc_detection', save_media=False)",
    ("datumaro", "coco"): "import datumaro as dm; dm.Dataset.import_from(ROOT, 'coco_instances')"
                          ".export(OUT, 'coco_instances', save_media=False)",
    ("supervision", "yolo"): "import os, supervision as sv; d = sv.DetectionDataset.from_coco(IMAGES, SRC); "
                             "d.as_yolo(annotations_directory_path=OUT + '/labels', data_yaml_path=OUT + '/data.yaml')",
    ("supervision", "voc"): "import supervision as sv; sv.DetectionDataset.from_coco(IMAGES, SRC)"
                            ".as_pascal_voc(annotations_directory_path=OUT)",
    ("supervision", "coco"): "import os, supervision as sv; os.makedirs(OUT); sv.DetectionDataset.from_coco(IMAGES, SRC)"
                             ".as_coco(annotations_path=OUT + '/annotations.json')",
}


def run(python: str, code: str, src: Path, images: Path, out: Path, timeout: int) -> tuple[float, float, str]:
    """(seconds, peak MB, error) of one tool run in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    root = src.parent.parent
    prog = f"SRC, ROOT, IMAGES, OUT = {str(src)!r}, {str(root)!r}, {str(images)!r}, {str(out)!r}\n{code}\n{HWM}"
    t = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", prog], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("nan"), float("nan"), f"timed out after {timeout} s"
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return seconds, float("nan"), ("out of memory" if proc.returncode in (-9, 137) else last[:80])
    hwm = [line for line in proc.stdout.splitlines() if line.startswith("HWM")]
    return seconds, int(hwm[-1].split()[1]) / 1024 if hwm else float("nan"), ""


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def check(target: str, out: Path, src_doc: dict) -> str:
    """What the output got right, checked against the source."""
    boxes = len(src_doc["annotations"])
    polys = sum(1 for a in src_doc["annotations"] if a["segmentation"])
    notes = []
    if target == "coco":
        files = list(out.rglob("*.json"))
        if not files:
            return "no output"
        doc = json.loads(files[0].read_bytes())
        anns = doc["annotations"]
        ids = [a["id"] for a in anns]
        notes.append(f"{len(anns)}/{boxes} anns")
        notes.append("ids unique" if len(set(ids)) == len(ids) else "DUPLICATE ids")
        kept = {c["id"]: c["name"] for c in doc["categories"]} == {c["id"]: c["name"] for c in src_doc["categories"]}
        notes.append("cat ids kept" if kept else "cat ids CHANGED")
        if polys:
            notes.append(f"polygons {sum(1 for a in anns if a.get('segmentation'))}/{polys}")
    elif target == "yolo":
        lines = [w for f in out.rglob("*.txt") for line in f.read_text().splitlines()
                 if len(w := line.split()) >= 5 and all(_number(v) for v in w)]  # label lines, not image lists
        notes.append(f"{len(lines)}/{boxes} lines")
        if polys:
            notes.append(f"polygons {sum(1 for w in lines if len(w) > 5)}/{polys}")
    else:
        import xml.etree.ElementTree as ET

        xmls = list(out.rglob("*.xml"))
        objs = 0
        written: list[float] = []
        for f in xmls:
            root = ET.parse(f).getroot()
            for o in root.iter("object"):
                objs += 1
                if root.findtext("filename", "").endswith("000000.jpg"):
                    written.append(float(o.find("bndbox").findtext("xmin")))  # type: ignore[union-attr]
        notes.append(f"{objs}/{boxes} objects")
        xs = sorted(a["bbox"][0] for a in src_doc["annotations"] if a["image_id"] == 1)
        if written and len(written) == len(xs):  # objects may come in any order: compare sorted
            offsets = {round(w - x, 6) for w, x in zip(sorted(written), xs, strict=True)}
            notes.append("1-based" if offsets == {1.0} else ("0-based" if offsets == {0.0}
                                                            else f"xmin − x in {sorted(offsets)[:3]}"))
    return ", ".join(notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=os.environ.get("VISIONLOOP_PEERS_PYTHON", ""),
                    help="python of a virtualenv with datumaro, globox and supervision")
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--boxes", type=int, default=10, help="boxes per image")
    ap.add_argument("--polygons", type=float, default=0.0, help="fraction of annotations with a polygon")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=["visionloop", "visionloop-1", "globox", "datumaro", "supervision"],
                    help="visionloop-1: visionloop in one process (workers=1)")
    ap.add_argument("--targets", nargs="+", default=["yolo", "voc", "coco"])
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--work", type=Path, default=Path("/dev/shm/visionloop-bench-convert"))
    args = ap.parse_args()

    tag = f"{args.images}-{args.boxes}-{args.polygons}"
    data = args.work / f"coco-{tag}"
    t = time.perf_counter()
    src = coco_dataset(data, args.images, boxes_per_image=args.boxes, size=(160, 120), polygons=args.polygons)
    print(f"dataset: {args.images} images, {args.images * args.boxes} boxes, polygons {args.polygons:.0%} "
          f"({time.perf_counter() - t:.1f} s to make or reuse)", file=sys.stderr)
    src_doc = json.loads(src.read_bytes())
    out = args.work / "out"
    results: dict[tuple[str, str], tuple[float, float, str, str]] = {}
    for target in args.targets:
        for tool in args.tools:
            python = sys.executable if tool.startswith("visionloop") else args.peers
            if not python:
                continue
            times, peaks, err = [], [], ""
            for _ in range(args.repeat):
                s, m, err = run(python, CODE[(tool, target)], src, data / "images" / "default", out, args.timeout)
                if err:
                    break
                times.append(s)
                peaks.append(m)
            note = err or check(target, out, src_doc)
            results[(tool, target)] = (statistics.median(times) if times and not err else float("nan"),
                                       max(peaks) if peaks and not err else float("nan"), note, "")
            print(f"  {tool:<12} → {target:<5} {results[(tool, target)][0]:7.2f} s "
                  f"{results[(tool, target)][1]:7.0f} MB  {note}", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)

    print(f"\nCOCO → X, {args.images:,} images / {args.images * args.boxes:,} boxes, polygons on "
          f"{args.polygons:.0%}; median of {args.repeat}; annotations only, output on /dev/shm")
    print(f"{'tool':<12} {'target':<6} {'seconds':>8} {'peak MB':>8} {'× visionloop':>13}  output")
    for target in args.targets:
        base = results.get(("visionloop", target), (float("nan"),))[0]
        for tool in args.tools:
            if (tool, target) not in results:
                continue
            s, m, note, _ = results[(tool, target)]
            ratio = s / base if base == base and s == s else float("nan")
            print(f"{tool:<12} {target:<6} {s:8.2f} {m:8.0f} {ratio:13.2f}  {note}")


if __name__ == "__main__":
    main()
