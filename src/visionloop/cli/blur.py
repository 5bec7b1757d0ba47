"""visionloop blur: blur faces (and plates, with your plate detector) in copies of images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from visionloop.cli.console import console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt


def blur(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Write the blurred copies here (a new or empty folder; never "
                                                   "a source folder).")],
    faces: Annotated[bool, typer.Option("--faces/--no-faces", help="Blur faces (the gallery's face-detector).")]
    = True,
    plates: Annotated[str | None, typer.Option(help="A registry model that detects licence plates (add yours with "
                                                    "`visionloop gallery add --onnx`).")] = None,
    conf: Annotated[float, typer.Option(help="Detection threshold.")] = 0.5,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Copies of the images with every detected face (and plate) blurred; all other pixels unchanged. The regions
    found are written beside them (blur-regions.json) so they can be checked. The sources are never modified."""
    import cv2

    from visionloop.core.errors import VisionLoopError
    from visionloop.formats.base import is_image
    from visionloop.geo.privacy import blur as blur_image
    from visionloop.geo.privacy import find_regions
    from visionloop.infer import Predictor
    from visionloop.store import Store
    from visionloop.store import models as registry

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and is_image(f))
        elif p.is_file():
            files.append(p)
        else:
            raise VisionLoopError("no such file or folder", path=p)
    if not files:
        raise VisionLoopError("no images to blur", path=paths[0] if paths else None)
    out_r = out.resolve()
    for f in files:
        if f.resolve().parent == out_r:
            raise VisionLoopError("--out is a folder the images come from", path=out,
                                  hint="write the blurred copies to a new folder")
    if out.exists() and any(out.iterdir()):
        raise VisionLoopError("--out is not empty", path=out, hint="pass a new or empty folder")
    if not faces and not plates:
        raise VisionLoopError("nothing to blur", hint="pass --faces and/or --plates MODEL")
    detectors: list[tuple[str, Any]] = []
    with Store.open(project) as store:
        names = (["face-detector"] if faces else []) + ([plates] if plates else [])
        for name in names:
            try:
                info = registry.get(store, name)
            except VisionLoopError:
                if name == "face-detector":
                    raise VisionLoopError("this project has no face-detector",
                                          hint="visionloop gallery add face-detector") from None
                raise
            e = info.export("onnx")
            if info.task != "detect" or e is None:
                raise VisionLoopError(f"model {name} is not a detector with an ONNX export",
                                      hint="blur needs detection models")
            detectors.append((name, Predictor(registry.blob_file(store, e.sha256))))
    out.mkdir(parents=True, exist_ok=True)
    report = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VisionLoopError("cannot read the image", path=f)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        regions = find_regions(detectors, rgb, conf=conf)
        dst = out / f.name
        ok = cv2.imwrite(str(dst), cv2.cvtColor(blur_image(rgb, regions), cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise VisionLoopError("cannot write the blurred copy", path=dst)
        report.append({"file": f.name, "regions": [r.to_json() for r in regions]})
    (out / "blur-regions.json").write_text(json.dumps(report, indent=1))
    counts = {"images": len(report), "regions": sum(len(r["regions"]) for r in report)}
    if as_json:
        print_json({**counts, "out": str(out), "files": report})
        return
    console.print(f"blurred {counts['regions']} regions in {counts['images']} images → {out} "
                  "(regions in blur-regions.json)", highlight=False)
