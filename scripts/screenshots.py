"""Regenerate docs/screenshots/ (the README's Web UI pictures) from the browser tests' own screenshots.

    python scripts/screenshots.py                  # runs the browser tests, then shrinks their screenshots
    python scripts/screenshots.py --from DIR       # only shrink the PNGs already in DIR (a pytest screens0/)

Each page's screenshot is cut to its top MAX_H pixels, scaled to at most WIDTH pixels wide and quantised to a
256-colour palette (the pages are flat colours and text; the photos stay legible), so the folder stays small.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
PAGES = ["dataset", "image", "health", "models", "errors-missed", "evaluation", "production", "map"]
TESTS = ["tests/web/test_browser.py", "tests/web/test_production.py", "tests/web/test_map.py"]
WIDTH, MAX_H = 1200, 1000


def shrink(src: Path, dst: Path) -> int:
    with Image.open(src) as im:
        im = im.convert("RGB")
        im = im.crop((0, 0, im.width, min(im.height, MAX_H)))
        if im.width > WIDTH:
            im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.Resampling.LANCZOS)
        im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            dst, optimize=True)
    return dst.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="a folder of the tests' screenshots (screens0/)")
    args = ap.parse_args()
    src = args.src
    if src is None:
        base = Path(tempfile.mkdtemp(prefix="vl-screens-"))
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", f"--basetemp={base}", *TESTS],
                             cwd=ROOT)
        if rc:
            print(f"the browser tests failed (exit {rc}); docs/screenshots/ left as it was", file=sys.stderr)
            return rc
        src = base / "screens0"
    missing = [p for p in PAGES if not (src / f"{p}.png").is_file()]
    if missing:
        print(f"{src}: no screenshot of {', '.join(missing)}; run the browser tests first", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for p in PAGES:
        n = shrink(src / f"{p}.png", OUT / f"{p}.png")
        total += n
        print(f"{OUT / f'{p}.png'}: {n / 1024:.0f} KiB")
    print(f"total {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
