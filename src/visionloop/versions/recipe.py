"""The recipe of a version: split, preprocessing, augmentation, seed. Versioned (`schema: 1`).

    schema: 1
    seed: 7
    split: {mode: random, ratios: {train: 0.7, valid: 0.2, test: 0.1}}
    preprocess:
      resize: {width: 640, height: 640, mode: fit, edges: black}
      classes: {rename: {racoon: raccoon}, drop: [blurry]}
    augment:
      multiplier: 3
      flip: {horizontal: true}
      rotate: {degrees: 15}
      brightness: {percent: 25}
    min_visibility: 0.25
    output: {format: jpeg, quality: 95}

A recipe never names the library that does the pixel work. Every field is
checked once, when the recipe is built or loaded; a bad file is refused with
its path, the field (`augment.rotate.degrees`) and, for YAML, the line.

Order of application (fixed, so a recipe is a set of choices, not a program):
selection (tags, class changes, null filter) → split → auto-orient → static
crop → tile / isolate objects → resize → grayscale → contrast → [train outputs
only] mosaic → flips, 90° turns → rotation, shear → crop/zoom → box-level
variants → colour (grayscale, hue, saturation, brightness, exposure) → blur,
motion blur → camera gain, noise → cutout → encode.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from visionloop.core.errors import VisionLoopError
from visionloop.transforms.choices import Contrast, Edges, NoiseKind, ResizeMode
from visionloop.versions.choices import ImageFormat, SplitMode

SCHEMA = 1

Percent = Annotated[float, Field(gt=0, le=100)]
Degrees = Annotated[float, Field(gt=0, le=180)]


class RecipeError(VisionLoopError):
    """A recipe is malformed, names an unknown field or holds an impossible value."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- split ------------------------------------------------------------------------------------
class Ratios(_Model):
    train: float = Field(default=0.7, ge=0, le=1)
    valid: float = Field(default=0.2, ge=0, le=1)
    test: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Ratios:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ratios must add up to 1, these add up to {total:g}")
        return self

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


class Split(_Model):
    mode: SplitMode = SplitMode.RANDOM
    ratios: Ratios = Ratios()
    stratify: bool = Field(default=True, description="keep each class's share alike across splits")


# -- preprocessing ----------------------------------------------------------------------------
class TagFilter(_Model):
    include: tuple[str, ...] = Field(default=(), description="keep images with any of these tags (empty: every image)")
    exclude: tuple[str, ...] = Field(default=(), description="then drop images with any of these tags")


class ClassChanges(_Model):
    rename: dict[str, str] = Field(default_factory=dict, description="old name: new name")
    merge: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="new name: [old names]")
    drop: tuple[str, ...] = Field(default=(), description="annotations of these classes are removed")

    @model_validator(mode="after")
    def _consistent(self) -> ClassChanges:
        seen: dict[str, str] = {}
        for old in self.rename:
            seen[old] = "rename"
        for new, olds in self.merge.items():
            if not olds:
                raise ValueError(f"merge into {new!r} lists no classes")
            for old in olds:
                if old in seen:
                    raise ValueError(f"class {old!r} appears in both {seen[old]} and merge")
                seen[old] = "merge"
        for old in self.drop:
            if old in seen:
                raise ValueError(f"class {old!r} appears in both {seen[old]} and drop")
        return self

    def mapping(self) -> dict[str, str | None]:
        """old name → new name (None: dropped); classes not named map to themselves."""
        out: dict[str, str | None] = dict(self.rename)
        for new, olds in self.merge.items():
            for old in olds:
                out[old] = new
        for old in self.drop:
            out[old] = None
        return out


class StaticCrop(_Model):
    """A fixed window, in percent of the image's width and height."""

    x0: float = Field(default=0, ge=0, lt=100)
    y0: float = Field(default=0, ge=0, lt=100)
    x1: float = Field(default=100, gt=0, le=100)
    y1: float = Field(default=100, gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> StaticCrop:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"the crop window is empty: x {self.x0}..{self.x1} %, y {self.y0}..{self.y1} %")
        return self


class Tile(_Model):
    rows: int = Field(ge=1, le=64)
    cols: int = Field(ge=1, le=64)


class Resize(_Model):
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    mode: ResizeMode = ResizeMode.STRETCH
    edges: Edges = Field(default=Edges.BLACK, description="fill of the bars in `fit` mode")


class FilterNull(_Model):
    max_percent: float = Field(ge=0, le=100, description="at most this share of the version's images are empty")


class Preprocess(_Model):
    auto_orient: bool = Field(default=True, description="bake EXIF orientation into the pixels")
    filter_tags: TagFilter | None = None
    classes: ClassChanges = ClassChanges()
    filter_null: FilterNull | None = None
    static_crop: StaticCrop | None = None
    tile: Tile | None = None
    isolate_objects: bool = Field(default=False, description="each object cropped into its own image (classification)")
    resize: Resize | None = None
    grayscale: bool = False
    contrast: Contrast = Contrast.NONE

    @model_validator(mode="after")
    def _one_expansion(self) -> Preprocess:
        if self.tile is not None and self.isolate_objects:
            raise ValueError("tile and isolate_objects cannot be combined: pick one")
        return self


# -- augmentation -----------------------------------------------------------------------------
class Flip(_Model):
    horizontal: bool = False
    vertical: bool = False


class Rot90(_Model):
    """One of the enabled turns, or none, with equal chances."""

    clockwise: bool = False
    counter_clockwise: bool = False
    upside_down: bool = False


class Rotate(_Model):
    degrees: Degrees


class Shear(_Model):
    horizontal: float = Field(default=0, ge=0, le=45)
    vertical: float = Field(default=0, ge=0, le=45)


class Crop(_Model):
    """Zoom in: keep a random window of (100 - up to `percent`) % of each side, scaled back up."""

    percent: float = Field(gt=0, lt=100)


class Chance(_Model):
    percent: Percent


class Amount(_Model):
    percent: Percent


class HueShift(_Model):
    degrees: Degrees


class Blur(_Model):
    pixels: float = Field(gt=0, le=25, description="largest Gaussian sigma, in pixels")


class MotionBlur(_Model):
    pixels: int = Field(ge=3, le=101, description="longest streak, in pixels")


class Noise(_Model):
    percent: Percent
    kind: NoiseKind = NoiseKind.SALT_PEPPER


class Cutout(_Model):
    count: int = Field(ge=1, le=50)
    percent: float = Field(gt=0, le=50, description="each square's side, in percent of the image's shorter side")


class Mosaic(_Model):
    percent: float = Field(gt=0, le=100, description="share of augmented outputs that are 2x2 mosaics")
    jitter: float = Field(default=0, ge=0, lt=100, description="how far the centre may move, percent of half a side")


class BoxAugment(_Model):
    """Variants applied inside each bounding box; the box stays where it is."""

    flip: Flip | None = None
    rotate: Rotate | None = None
    shear: Shear | None = None
    crop: Crop | None = None
    brightness: Amount | None = None
    exposure: Amount | None = None
    blur: Blur | None = None
    noise: Noise | None = None


class Augment(_Model):
    multiplier: int = Field(default=3, ge=1, le=50, description="outputs per training image")
    keep_original: bool = Field(default=True, description="the first of those outputs is not augmented")
    mosaic: Mosaic | None = None
    flip: Flip | None = None
    rot90: Rot90 | None = None
    rotate: Rotate | None = None
    shear: Shear | None = None
    crop: Crop | None = None
    box: BoxAugment | None = None
    grayscale: Chance | None = None
    hue: HueShift | None = None
    saturation: Amount | None = None
    brightness: Amount | None = None
    exposure: Amount | None = None
    blur: Blur | None = None
    motion_blur: MotionBlur | None = None
    camera_gain: Amount | None = None
    noise: Noise | None = None
    cutout: Cutout | None = None


class Output(_Model):
    format: ImageFormat = ImageFormat.JPEG
    quality: int = Field(default=95, ge=1, le=100, description="JPEG quality of re-encoded images")


class Recipe(_Model):
    schema_version: Literal[1] = Field(default=1, alias="schema")
    seed: int = Field(default=0, ge=0, lt=2**31)
    split: Split = Split()
    preprocess: Preprocess = Preprocess()
    augment: Augment | None = None
    min_visibility: float = Field(default=0.1, ge=0, le=1, description="objects cut by a crop keep at least this share")
    output: Output = Output()

    @model_validator(mode="after")
    def _compatible(self) -> Recipe:
        p = self.preprocess
        if self.augment is not None and self.augment.mosaic is not None and (p.tile or p.isolate_objects):
            raise ValueError("mosaic cannot be combined with tile or isolate_objects")
        return self

    def to_json(self) -> dict[str, Any]:
        """Every field, defaults included, as a recipe file would spell it."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def hash(self) -> str:
        """Stable digest of what the recipe does (two spellings of one recipe hash alike)."""
        return hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    @property
    def augments(self) -> bool:
        return self.augment is not None


# -- loading ----------------------------------------------------------------------------------
def load_recipe(source: str | Path | dict[str, Any] | Recipe) -> Recipe:
    """A Recipe from a YAML/JSON file, a dict, or a Recipe (returned as is).

    Raises RecipeError naming the file, the field and (YAML) the line.
    """
    if isinstance(source, Recipe):
        return source
    if isinstance(source, dict):
        return _validate(source, path=None, text=None)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("recipe file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"cannot read the recipe ({e})", path=path) from None
    data = _parse(text, path)
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a mapping of fields (schema, seed, split, ...), got "
                          f"{type(data).__name__}", path=path)
    if "schema" not in data:
        raise RecipeError("missing field `schema`", path=path, where="schema",
                          hint=f"start the recipe with `schema: {SCHEMA}`")
    return _validate(data, path=path, text=text)


def _parse(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise RecipeError(f"malformed JSON: {e.msg}", path=path, where=f"line {e.lineno}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecipeError(f"malformed YAML: {getattr(e, 'problem', None) or e}", path=path,
                          where=f"line {mark.line + 1}" if mark else None) from None


def _validate(data: dict[str, Any], *, path: Path | None, text: str | None) -> Recipe:
    schema = data.get("schema", SCHEMA)
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise RecipeError(f"recipe schema {schema} is newer than this visionloop, which reads schema {SCHEMA}",
                          path=path, where="schema", hint="upgrade visionloop")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"]) or "recipe"
        where = field
        line = _line_of(text, first["loc"]) if text is not None and path is not None and \
            path.suffix.lower() != ".json" else None
        if line is not None:
            where = f"{field}, line {line}"
        message = _message(first)
        if len(errors) > 1:
            others = ", ".join(".".join(str(p) for p in err["loc"]) or "recipe" for err in errors[1:4])
            message += f" (and {len(errors) - 1} more: {others}{', ...' if len(errors) > 4 else ''})"
        raise RecipeError(message, path=path, where=where) from None


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        known = _known_fields(err["loc"][:-1])
        return f"unknown field `{err['loc'][-1]}`" + (f" (known here: {', '.join(known)})" if known else "")
    msg = str(err["msg"])
    if err["type"] in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ")
    if "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        msg += f", got {err['input']!r}"
    return msg


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names allowed at `loc` (a path of field names into Recipe)."""
    import typing

    model: Any = Recipe
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        info = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if info is None:
            return []
        ann = info.annotation
        args = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = args[0] if args else ann
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its deepest existing parent)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:
                if str(key.value) == str(part):
                    found = (key, value)
                    break
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
