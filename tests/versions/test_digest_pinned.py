"""Version generation gives byte-identical outputs across refactors: the content digest (every output's bytes,
name, split, size and annotations) of a fixed recipe on a fixed source is pinned. The value was computed on the
code before the transforms/ and runtime/ move (commit e961ec7) and after it, in and out of worker processes."""

from __future__ import annotations

import pytest

from visionloop.versions import create_version

from .conftest import new_project

RECIPE = {"schema": 1, "seed": 7, "split": {"ratios": {"train": 0.7, "valid": 0.2, "test": 0.1}},
          "preprocess": {"resize": {"width": 160, "height": 120, "mode": "fit"}},
          "augment": {"multiplier": 3, "flip": {"horizontal": True}, "rotate": {"degrees": 12},
                      "brightness": {"percent": 20}, "blur": {"pixels": 1.5}, "noise": {"percent": 2},
                      "mosaic": {"percent": 30}}}
PINNED = "aeed0129ad35c3d558fb955ea1ec66342c6e705ab65067fa1c9e3bfa8f686cbf"


@pytest.mark.parametrize("workers", [0, 2])
def test_fixed_recipe_gives_the_pinned_digest(small_raccoon, tmp_path, workers):
    with new_project(tmp_path / "p", small_raccoon) as store:
        info = create_version(store, RECIPE, workers=workers)
    assert info.content_digest == PINNED
