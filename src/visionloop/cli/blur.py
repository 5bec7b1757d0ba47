"""visionloop blur: blur faces (and plates, with your plate detector) in copies of images, or find the regions
to blur on a project's images (stored; every export blurs them), and list / add / reject stored regions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from visionloop.cli.console import console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt


class _DefaultRun(TyperGroup):
    """`visionloop blur …` runs the hidden `run` command unless the first word is a subcommand (`regions`,
    `settings`). A folder of that name given in folder mode (`visionloop blur settings --out DIR`) is a folder:
    folder mode is the only form with --out, and no subcommand takes it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        folder_mode = any(a == "--out" or a.startswith("--out=") for a in args)
        if not args or args[0] not in self.commands or (folder_mode and Path(args[0]).exists()):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultRun, help="Blur faces and plates: in copies of images, or in everything a project "
                                        "exports (`visionloop blur regions` lists and corrects the regions; "
                                        "`visionloop blur settings` sets blur at import and whether originals "
                                        "are kept).")
regions_app = typer.Typer(help="The project's stored blur regions: list, add, reject.", no_args_is_help=True)
app.add_typer(regions_app, name="regions")


def _classes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


@app.command("run", hidden=True)
def blur(
    paths: Annotated[list[Path] | None, typer.Argument(help="Image files or folders (folder mode, with --out). "
                                                             "Without them: the project's images.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the blurred copies here (a new or empty folder; "
                                                           "never a source folder).")] = None,
    faces: Annotated[bool, typer.Option("--faces/--no-faces", help="Blur faces (the gallery's face-detector).")]
    = True,
    plates: Annotated[str | None, typer.Option(help="A registry model that detects licence plates (add yours with "
                                                    "`visionloop gallery add --onnx`).")] = None,
    vehicles: Annotated[str | None, typer.Option(help="Until you have a plate detector: a registry model that "
                                                      "detects vehicles; the band of each vehicle where a plate "
                                                      "sits (its lower 40 %, inner 70 %) is blurred.")] = None,
    vehicle_classes: Annotated[str | None, typer.Option(help="The --vehicles model's classes that are vehicles, "
                                                             "comma-separated (default: car, truck, bus, van, "
                                                             "motorcycle, … as named by COCO, Cityscapes and "
                                                             "Mapillary).")] = None,
    conf: Annotated[float, typer.Option(help="Detection threshold.")] = 0.5,
    split: Annotated[str | None, typer.Option(help="Project mode: only this split's images.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Folder mode (`blur SRC… --out DIR`): copies of the images with every detected face (and plate) blurred, all
    other pixels unchanged, the regions beside them (blur-regions.json); the sources are never modified.
    Project mode (`blur --project P`): find the regions on the project's images and store them as one batch; the
    stored images do not change and every export blurs them — unless the project keeps no originals (`visionloop
    blur settings --discard-originals`): then each image with regions is replaced by its blurred copy (not
    undoable). `visionloop blur regions list|add|reject` checks and corrects the stored regions."""
    from visionloop.core.errors import VisionLoopError
    from visionloop.geo.privacy import detect_project, load_detectors
    from visionloop.store import Store

    if not paths:
        if out is not None:
            raise VisionLoopError("--out needs image files or folders", path=out,
                                  hint="visionloop blur SRC --out DIR; without SRC blur finds regions on the project")
        with Store.open(project) as store:
            dets = load_detectors(store, faces=faces, plates=plates, vehicles=vehicles,
                                  vehicle_classes=_classes(vehicle_classes))
            report = detect_project(store, dets, split=split, conf=conf)
        if as_json:
            print_json(report.to_json())
            return
        console.print(describe(report), highlight=False, soft_wrap=True)
        return
    if out is None:
        raise VisionLoopError("folder mode needs --out DIR", hint="visionloop blur SRC --out DIR")
    if split is not None:
        raise VisionLoopError("--split is for the project's images", hint="drop --split, or drop the paths")
    _folder(paths, out, faces=faces, plates=plates, vehicles=vehicles, vehicle_classes=_classes(vehicle_classes),
            conf=conf, project=project, as_json=as_json)


def describe(report: Any) -> str:
    """One line for a DetectReport (also `visionloop import --blur`)."""
    from visionloop.cli.render import plural

    found = ", ".join(f"{n} {c}" for c, n in sorted(report.regions.items())) or "no new regions"
    line = f"{plural(report.images, 'image', 'images')}: {found}"
    if report.batch and report.baked:
        line += (f" (batch {report.batch}); {plural(report.baked, 'image', 'images')} blurred in place, "
                 f"{plural(report.originals_discarded, 'original', 'originals')} removed from the blob store (the "
                 "project keeps no originals; not undoable)")
        if report.originals_kept:
            line += (f"; {plural(len(report.originals_kept), 'original', 'originals')} still used elsewhere ("
                     + ", ".join(sorted(set(report.originals_kept.values()))) + ") stay")
    elif report.batch:
        line += f" (batch {report.batch}; undo with `visionloop undo {report.batch}`)"
    return line + (f", {report.skipped} already done" if report.skipped else "")


def _folder(paths: list[Path], out: Path, *, faces: bool, plates: str | None, vehicles: str | None,
            vehicle_classes: list[str] | None, conf: float, project: Path, as_json: bool) -> None:
    import cv2

    from visionloop.core.errors import VisionLoopError
    from visionloop.formats.base import is_image
    from visionloop.geo.privacy import blur as blur_image
    from visionloop.geo.privacy import load_detectors
    from visionloop.store import Store

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
    with Store.open(project) as store:
        detectors = load_detectors(store, faces=faces, plates=plates, vehicles=vehicles,
                                   vehicle_classes=vehicle_classes)
    out.mkdir(parents=True, exist_ok=True)
    report = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VisionLoopError("cannot read the image", path=f)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        regions = detectors.find(rgb, conf=conf)
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


@app.command("settings")
def settings(
    on_import: Annotated[bool | None, typer.Option("--on-import/--no-on-import", help="Every `visionloop import` "
                                                   "(and API upload) finds the regions on the images it adds.")]
    = None,
    keep: Annotated[bool | None, typer.Option("--keep-originals/--discard-originals", help="Keep the unblurred "
                                              "originals in the project (exports blur them), or replace each image "
                                              "with regions by its blurred copy and remove the original from the "
                                              "blob store: now for the images that already have regions, and from "
                                              "then on at every blur. Not undoable; your source files are never "
                                              "touched.")] = None,
    plates: Annotated[str | None, typer.Option(help="Plate detector used at import (`none` clears it).")] = None,
    vehicles: Annotated[str | None, typer.Option(help="Vehicle detector whose plate bands are blurred at import "
                                                      "(`none` clears it).")] = None,
    vehicle_classes: Annotated[str | None, typer.Option(help="Its vehicle classes, comma-separated.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Show or change the project's privacy settings (the `privacy:` section of visionloop.yaml)."""
    from visionloop.geo.privacy import bake_pending, load_detectors
    from visionloop.store import Store
    from visionloop.store.settings import privacy, set_privacy

    def model(v: str | None) -> str | None:
        return None if v is None else ("" if v.lower() == "none" else v)

    with Store.open(project) as store:
        before = privacy(store)
        after_models = {"plates": model(plates), "vehicles": model(vehicles)}
        new_classes = _classes(vehicle_classes)
        check = {k: (v if v is not None else getattr(before, k)) for k, v in after_models.items()}
        if check["plates"] or check["vehicles"] or on_import:  # refuse a model that cannot be used, before saving
            load_detectors(store, faces=bool(on_import if on_import is not None else before.blur_on_import),
                           plates=check["plates"] or None, vehicles=check["vehicles"] or None,
                           vehicle_classes=new_classes or before.vehicle_classes or None)
        policy = set_privacy(store, blur_on_import=on_import, keep_originals=keep, vehicle_classes=new_classes,
                             **after_models)
        baked = bake_pending(store) if keep is False else None
    if as_json:
        print_json({**policy.to_json(), "baked": baked.to_json() if baked else None})
        return
    console.print(f"blur on import: {'on' if policy.blur_on_import else 'off'}"
                  + (f" (faces{', plates: ' + policy.plates if policy.plates else ''}"
                     f"{', vehicle bands: ' + policy.vehicles if policy.vehicles else ''})"
                     if policy.blur_on_import else "")
                  + f"; originals: {'kept (exports blur them)' if policy.keep_originals else 'discarded'}",
                  highlight=False, soft_wrap=True)
    if baked is not None and baked.batch:
        from visionloop.cli.render import plural

        kept = (f"; {plural(len(baked.originals_kept), 'original', 'originals')} still used elsewhere stay"
                if baked.originals_kept else "")
        console.print(f"blurred {plural(baked.baked, 'image', 'images')} with regions in place (batch {baked.batch}, "
                      f"not undoable); {plural(baked.originals_discarded, 'original', 'originals')} removed from the "
                      f"blob store{kept}", highlight=False, soft_wrap=True)


@regions_app.command("list")
def list_(image: Annotated[str | None, typer.Argument(help="Only this image (id, file name or SPLIT/FILE).")]
          = None, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """The stored blur regions (of one image), oldest first: what every export blurs (state blur)."""
    from visionloop.store import Store, blur_regions

    with Store.open(project) as store:
        rows = blur_regions.regions(store, image_id=blur_regions.find_image(store, image) if image else None)
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    table = Table("region", "image", "class", "box x0 y0 x1 y1", "score", "source", "state", "batch")
    for r in rows:
        table.add_row(str(r.id), (f"{r.split}/" if r.split else "") + r.file_name, r.cls,
                      " ".join(f"{v:.0f}" for v in r.box), "" if r.score is None else f"{r.score:.2f}", r.source,
                      r.state, str(r.batch_id))
    console.print(table)


@regions_app.command("add")
def add(image: Annotated[str, typer.Argument(help="Image id, file name or SPLIT/FILE.")],
        x0: Annotated[float, typer.Argument()], y0: Annotated[float, typer.Argument()],
        x1: Annotated[float, typer.Argument()], y1: Annotated[float, typer.Argument()],
        cls: Annotated[str, typer.Option("--class", help="What the region is.")] = "face",
        project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Add a region a detector missed (a box in the image's upright pixels), as one batch (undoable while the
    project keeps originals; otherwise the image is blurred in place at once)."""
    from visionloop.geo.privacy import blur_added
    from visionloop.store import Store, blur_regions

    with Store.open(project) as store:
        batch, rid = blur_added(store, blur_regions.find_image(store, image), (x0, y0, x1, y1), cls=cls)
    if as_json:
        print_json({"batch": batch, "region": rid})
        return
    console.print(f"added blur region {rid} ({cls}) to {image} (batch {batch})", highlight=False)


@regions_app.command("reject")
def reject(region: Annotated[int, typer.Argument(help="Region id (`visionloop blur regions list`).")],
           project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Reject a region (no face, no plate): exports stop blurring it. One undoable batch."""
    from visionloop.store import Store, blur_regions

    with Store.open(project) as store:
        batch = blur_regions.reject(store, region)
    if as_json:
        print_json({"batch": batch, "region": region})
        return
    console.print(f"rejected blur region {region} (batch {batch}; undo with `visionloop undo {batch}`)",
                  highlight=False)
