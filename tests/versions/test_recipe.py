"""Recipes are validated once; a bad one is refused naming the file, the field and (YAML) the line."""

import json

import pytest

from visionloop.core import VisionLoopError
from visionloop.transforms.choices import Edges, ResizeMode
from visionloop.versions import Recipe, RecipeError, load_recipe


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_error_names_file_field_and_line(tmp_path):
    p = _write(tmp_path, "r.yaml", "schema: 1\nseed: 3\naugment:\n  multiplier: 2\n  rotate:\n    degrees: 400\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert msg.startswith(f"{p} (augment.rotate.degrees, line 6): ")
    assert "less than or equal to 180" in msg and "400" in msg
    assert isinstance(e.value, VisionLoopError)


def test_unknown_field_lists_the_known_ones(tmp_path):
    p = _write(tmp_path, "r.yaml", "schema: 1\npreprocess:\n  resize: {width: 64, height: 64, mdoe: fit}\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    assert "(preprocess.resize.mdoe, line 3)" in str(e.value)
    assert "unknown field `mdoe`" in str(e.value) and "mode" in str(e.value)


def test_json_recipe_and_bad_choice(tmp_path):
    p = _write(tmp_path, "r.json", json.dumps({"schema": 1, "preprocess": {"resize": {
        "width": 64, "height": 64, "mode": "squash"}}}))
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    assert "preprocess.resize.mode" in str(e.value) and "'stretch', 'fit' or 'fill'" in str(e.value)


@pytest.mark.parametrize("data, field, words", [
    ({"schema": 1, "split": {"ratios": {"train": 0.5}}}, "split.ratios", "add up to 1"),
    ({"schema": 2}, "schema", "newer than this visionloop"),
    ({"schema": 1, "preprocess": {"tile": {"rows": 2, "cols": 2}, "isolate_objects": True}}, "preprocess",
     "cannot be combined"),
    ({"schema": 1, "preprocess": {"static_crop": {"x0": 50, "x1": 40}}}, "preprocess.static_crop", "empty"),
    ({"schema": 1, "preprocess": {"classes": {"rename": {"a": "b"}, "drop": ["a"]}}}, "preprocess.classes",
     "both rename and drop"),
    ({"schema": 1, "augment": {"multiplier": 0}}, "augment.multiplier", "greater than or equal to 1"),
    ({"schema": 1, "seed": -1}, "seed", "greater than or equal to 0"),
])
def test_invalid_values_name_their_field(data, field, words):
    with pytest.raises(RecipeError) as e:
        load_recipe(data)
    assert str(e.value).startswith(f"{field}: ") and words in str(e.value)


def test_missing_schema_and_malformed_yaml(tmp_path):
    with pytest.raises(RecipeError, match="missing field `schema`"):
        load_recipe(_write(tmp_path, "a.yaml", "seed: 1\n"))
    with pytest.raises(RecipeError, match=r"\(line 2\): malformed YAML"):
        load_recipe(_write(tmp_path, "b.yaml", "schema: 1\nseed: a: 2\n"))
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_defaults_hash_and_choices():
    a = load_recipe({"schema": 1})
    b = Recipe()
    assert a == b and a.hash == b.hash
    assert a.to_json()["schema"] == 1 and a.split.ratios.as_dict() == {"train": 0.7, "valid": 0.2, "test": 0.1}
    c = load_recipe({"schema": 1, "preprocess": {"resize": {"width": 8, "height": 8, "mode": "fit",
                                                            "edges": "white"}}})
    assert c.preprocess.resize.mode is ResizeMode.FIT and c.preprocess.resize.edges.fill == (255, 255, 255)
    assert Edges.REFLECT.mode == "reflect" and "letterbox" not in Edges.BLACK.description
    assert c.hash != a.hash
