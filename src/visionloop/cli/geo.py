"""`visionloop geo`: GPS points and sequences, GeoJSON, a self-contained HTML map, structure from motion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.core.errors import VisionLoopError

app = typer.Typer(help="Street-level mapping: GPS tracks, sequences, GeoJSON, HTML map, structure from motion.",
                  no_args_is_help=True)

ImagesOpt = Annotated[Path | None, typer.Option("--images", help="Read a folder of photos instead of the project.")]
SidecarOpt = Annotated[Path | None, typer.Option("--sidecar", help="GPX track or CSV (name,lat,lon[,alt,heading,"
                                                                   "time,dop]) for images with no EXIF GPS.")]
GapOpt = Annotated[float, typer.Option("--max-gap", help="A new sequence after this many seconds between photos.")]
StepOpt = Annotated[float, typer.Option("--max-step", help="A new sequence after this many metres between photos.")]


def _load(project: Path, images: Path | None, sidecar: Path | None) -> tuple[list[Any], Path | None]:
    from visionloop.geo.track import apply_sidecar, read_folder

    if images is not None:
        return read_folder(images, sidecar=sidecar), images
    from visionloop.geo.project import store_points
    from visionloop.store import Store

    with Store.open(project) as store:
        points = store_points(store)
    return (apply_sidecar(points, sidecar) if sidecar else points), None


def _summary(points: list[Any], seqs: list[list[Any]]) -> dict[str, Any]:
    from visionloop.geo.track import summary

    return summary(points, seqs)


def stats(
    images: ImagesOpt = None, sidecar: SidecarOpt = None, max_gap: GapOpt = 60.0, max_step: StepOpt = 50.0,
    project: ProjectOpt = Path("."), as_json: JsonOpt = False,
) -> None:
    """GPS coverage and sequences. --json prints {images, located, from_sidecar, with_heading, with_time,
    with_dop, sequences: [{sequence, images, first, last, length_m}], unlocated}."""
    from visionloop.geo.track import sequences

    points, _ = _load(project, images, sidecar)
    data = _summary(points, sequences(points, max_gap_s=max_gap, max_step_m=max_step))
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(f"{data['located']}/{data['images']} images located ({data['from_sidecar']} from a sidecar), "
                  f"{data['with_heading']} with heading, {data['with_time']} with time, {data['with_dop']} with DOP")
    table = Table("sequence", "images", "first", "last", "length m")
    for s in data["sequences"]:
        table.add_row(str(s["sequence"]), str(s["images"]), s["first"], s["last"], f"{s['length_m']:.1f}")
    console.print(table)
    if data["unlocated"]:
        console.print(f"no GPS: {', '.join(data['unlocated'][:10])}" + (" …" if len(data["unlocated"]) > 10 else ""))


def geojson(
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write.")],
    images: ImagesOpt = None, sidecar: SidecarOpt = None, max_gap: GapOpt = 60.0, max_step: StepOpt = 50.0,
    project: ProjectOpt = Path("."), as_json: JsonOpt = False,
) -> None:
    """Write the images as GeoJSON Points and each sequence as a LineString (opens in QGIS / geojson.io)."""
    from visionloop.geo.track import geojson as build
    from visionloop.geo.track import sequences

    points, _ = _load(project, images, sidecar)
    fc = build(points, sequences(points, max_gap_s=max_gap, max_step_m=max_step))
    out.write_text(json.dumps(fc))
    data = {"out": str(out), "points": sum(f["geometry"]["type"] == "Point" for f in fc["features"]),
            "lines": sum(f["geometry"]["type"] == "LineString" for f in fc["features"])}
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(f"wrote {out}: {data['points']} points, {data['lines']} sequence lines")


def map_(
    out: Annotated[Path, typer.Argument(help="HTML file to write.")],
    images: ImagesOpt = None, sidecar: SidecarOpt = None, max_gap: GapOpt = 60.0, max_step: StepOpt = 50.0,
    project: ProjectOpt = Path("."), as_json: JsonOpt = False,
) -> None:
    """Write a self-contained HTML map (no internet needed) of the sequences and photo positions."""
    from visionloop.geo.track import geojson as build
    from visionloop.geo.track import map_html, sequences

    points, _ = _load(project, images, sidecar)
    seqs = sequences(points, max_gap_s=max_gap, max_step_m=max_step)
    out.write_text(map_html(build(points, seqs), title=f"{sum(p.located for p in points)} photos, "
                                                       f"{len(seqs)} sequence(s)"))
    data = {"out": str(out), "points": sum(p.located for p in points), "sequences": len(seqs)}
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(f"wrote {out}: {data['points']} photos in {data['sequences']} sequence(s)")


def sfm(
    images: ImagesOpt = None, sidecar: SidecarOpt = None,
    sequence: Annotated[int | None, typer.Option("--sequence", help="Reconstruct this sequence only.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default <project>/geo/sfm/<all|seqN>).")]
    = None,
    matching: Annotated[str, typer.Option(help="spatial (by GPS proximity) | sequential | exhaustive")] = "spatial",
    neighbors: Annotated[int, typer.Option(help="Images matched with each image.")] = 20,
    max_image_size: Annotated[int, typer.Option(help="SIFT on images shrunk to this many pixels.")] = 1024,
    max_features: Annotated[int, typer.Option(help="SIFT features per image.")] = 8192,
    threads: Annotated[int, typer.Option(help="CPU threads.")] = 2,
    colmap_defaults: Annotated[bool, typer.Option("--colmap-defaults", help="pycolmap's own initial-pair "
                                                  "thresholds (they fail on forward-moving street sequences).")]
    = False,
    project: ProjectOpt = Path("."), as_json: JsonOpt = False,
) -> None:
    """Reconstruct cameras and sparse points (pycolmap), geo-registered to GPS in an ENU frame; writes the
    COLMAP text model (model/), points.ply, cameras.geojson and result.json under the output folder.
    --json prints result.json: {images, registered, points3d, mean_reprojection_px, gps_error_mean_m, ...}."""
    from visionloop.geo.sfm import SfmOptions, reconstruct
    from visionloop.geo.track import sequences

    points, folder = _load(project, images, sidecar)
    subset = points
    if sequence is not None:
        seqs = sequences(points)
        if not 0 <= sequence < len(seqs):
            raise VisionLoopError(f"no sequence {sequence}", hint=f"sequences are 0..{len(seqs) - 1} "
                                                                  "(visionloop geo stats)")
        subset = seqs[sequence]
    opts = SfmOptions(matching=matching, neighbors=neighbors, max_image_size=max_image_size,
                      max_features=max_features, num_threads=threads, street_init=not colmap_defaults)
    if folder is None:
        from visionloop.geo.project import stage_images
        from visionloop.store import Store

        with Store.open(project) as store:
            base = Path(store.root) / "geo"
            folder = stage_images(store, [p.name for p in subset], base / "images")
        out = out or base / "sfm" / ("all" if sequence is None else f"seq{sequence}")
    elif out is None:
        raise VisionLoopError("--out is needed with --images", hint="give the folder to write the reconstruction to")
    r = reconstruct(folder, subset, out, opts)
    if as_json:
        console.print_json(json.dumps(r.to_dict()))
        if r.error:
            raise typer.Exit(1)
        return
    if r.error:
        console.print(f"[red]{r.error}[/red]")
        raise typer.Exit(1)
    err = (f", camera vs GPS {r.gps_error_mean_m:.2f} m mean / {r.gps_error_max_m:.2f} m max"
           if r.gps_error_mean_m is not None else "")
    second = f" ({', '.join(r.second_pass)} by the second pass)" if r.second_pass else ""
    console.print(f"registered {r.registered}/{r.images} images{second}, {r.points3d} points, reprojection "
                  f"{r.mean_reprojection_px:.3f} px{err}, {r.seconds['total']:.1f} s -> {r.out}")


def mapfeatures(
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write (one Point per map feature).")],
    classes: Annotated[str, typer.Option("--classes", help="Comma-separated classes to map "
                                         "(traffic_sign,traffic_light).")],
    sfm_dir: Annotated[Path | None, typer.Option("--sfm", help="Reconstruction folder (default "
                                                 "<project>/geo/sfm/all).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Take a model's predictions from the "
                                              "prediction log instead of the project's annotations.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only annotations of this source: human | model "
                                               "| imported (default any).")] = None,
    min_views: Annotated[int, typer.Option("--min-views", help="Images a feature must be seen in.")] = 2,
    min_px: Annotated[float, typer.Option("--min-px", help="Reprojection tolerance floor, pixels (the tolerance "
                                          "is the larger of this and --box-frac × the box's size).")] = 6.0,
    box_frac: Annotated[float, typer.Option("--box-frac", help="Reprojection tolerance as a fraction of the "
                                            "box's size (square root of its area).")] = 0.25,
    max_range: Annotated[float, typer.Option("--max-range", help="Farthest a feature may be from a camera that "
                                             "saw it, metres.")] = 60.0,
    max_uncertainty: Annotated[float, typer.Option("--max-uncertainty", help="Reject a feature placed worse than "
                                                   "this, metres (1-σ along its worst axis).")] = 1.0,
    merge: Annotated[float, typer.Option("--merge", help="Merge features of one class closer than this, "
                                         "metres (0: never).")] = 1.0,
    appearance: Annotated[float, typer.Option("--appearance", help="Least colour-histogram similarity "
                                              "(Bhattacharyya coefficient, 0..1) of two crops of one feature; "
                                              "0 turns the appearance cue off.")] = 0.5,
    project: ProjectOpt = Path("."), as_json: JsonOpt = False,
) -> None:
    """Place detected objects on the map: detections of one class seen in several registered images are
    associated (rays that meet, reprojection into each box, colour of the crops), triangulated with the
    reconstruction's cameras and clustered; a detection no other image confirms is rejected. Writes GeoJSON
    Points (WGS84) with the class, the images, the metric ENU position, the 1-σ uncertainty and the heading
    the feature faces. --json prints {out, features, detections, used, rejected, not_registered, by_class}."""
    from visionloop.geo.mapfeatures import MapOptions, load_scene, map_features, project_copy, to_geojson
    from visionloop.geo.project import annotation_detections, logged_detections, pixels
    from visionloop.store import Store

    names = [c.strip() for c in classes.split(",") if c.strip()]
    if not names:
        raise VisionLoopError("--classes names no class", hint="e.g. --classes traffic_sign,traffic_light")
    if source is not None and source not in ("human", "model", "imported"):
        raise VisionLoopError(f"unknown --source {source!r}", hint="human | model | imported")
    if model is not None and source is not None:
        raise VisionLoopError("--source filters the project's annotations; --model reads the prediction log",
                              hint="give one of them")
    if out.exists() and not _ours(out):
        raise VisionLoopError("refusing to replace a file that is not a GeoJSON FeatureCollection", path=out,
                              hint="give a new file name")
    opts = MapOptions(min_views=min_views, min_px=min_px, box_frac=box_frac, max_range_m=max_range,
                      merge_m=merge, appearance=appearance, max_uncertainty_m=max_uncertainty)
    with Store.open(project) as store:
        scene = load_scene(sfm_dir or Path(store.root) / "geo" / "sfm" / "all")
        if not scene.georegistered:
            raise VisionLoopError("the reconstruction is not geo-registered (fewer than three images with GPS), "
                                  "so its points have no latitude/longitude", path=scene.folder,
                                  hint="reconstruct images that carry GPS (EXIF or --sidecar)")
        dets = (logged_detections(store, model, names) if model is not None
                else annotation_detections(store, names, source=source))
        report = map_features(scene, dets, opts, pixels(store) if appearance > 0 else None)
        kept = project_copy(Path(store.root))  # the project's latest, which the web UI's map draws
    text = json.dumps(to_geojson(report, scene))
    kept.parent.mkdir(parents=True, exist_ok=True)
    for target in (out, kept):
        part = target.with_name(target.name + ".part")  # whole or not at all: an interrupted run leaves it as it was
        try:
            part.write_text(text)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    data = {"out": str(out), **report.to_json()}
    if as_json:
        console.print_json(json.dumps(data))
        return
    by = ", ".join(f"{n} {c}" for c, n in data["by_class"].items()) or "none"
    console.print(f"wrote {out}: {data['features']} map features ({by}) from {data['used']} of "
                  f"{data['detections']} detections; {data['rejected']} rejected (seen in one image, or "
                  f"inconsistent)" + (f"; {len(report.not_registered)} image(s) with detections have no camera"
                                      if report.not_registered else ""))


def _ours(path: Path) -> bool:
    """An existing output may be replaced only when it is a GeoJSON FeatureCollection (a previous run's)."""
    try:
        return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("type") == "FeatureCollection"
    except (OSError, ValueError, AttributeError):
        return False


app.command("stats")(stats)
app.command("geojson")(geojson)
app.command("map")(map_)
app.command("sfm")(sfm)
app.command("mapfeatures")(mapfeatures)
