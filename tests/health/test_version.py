"""`visionloop health --dataset-version V`: the same report over a version's generated images."""

import shutil

import pytest

from visionloop.core import NotFoundError
from visionloop.health import check
from visionloop.store import Store
from visionloop.versions import create_version, show_version


@pytest.fixture(scope="module")
def versioned(raccoon_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("hv") / "p"
    shutil.copytree(raccoon_project, root)
    store = Store.open(root)
    # 2x2 tiles of every raccoon photo, split 70/20/10: 800 images; boxes cut by a tile are clipped
    recipe = {"schema": 1, "seed": 3, "split": {"mode": "random", "ratios": {"train": 0.7, "valid": 0.2, "test": 0.1}},
              "preprocess": {"tile": {"rows": 2, "cols": 2}}}
    info = create_version(store, recipe, workers=0)
    return store, info


def test_version_counts_match_the_version(versioned):
    store, info = versioned
    report = check(store, version=info.name, duplicates_search=False, workers=1)
    assert report.version == info.name
    c = report.counts
    assert c["images"] == info.images == 800
    assert c["annotations"] == info.counts["annotations"]
    assert {k: v["images"] for k, v in c["by_split"].items()} == \
        {k: v["images"] for k, v in info.counts["by_split"].items()}
    assert c["null"] == info.counts["null_images"]
    assert c["classes"] == 1
    # the project itself is unchanged by looking at a version
    assert check(store, duplicates_search=False, workers=1).counts["images"] == 200


def test_version_split_and_unknown_version(versioned):
    store, info = versioned
    train = check(store, version=info.name, split="train", duplicates_search=False, workers=1)
    assert train.counts["images"] == info.counts["by_split"]["train"]["images"]
    assert train.counts["annotations"] == info.counts["by_split"]["train"]["annotations"]
    with pytest.raises(NotFoundError, match="no version 'v99'"):
        check(store, version="v99", duplicates_search=False)
    assert show_version(store, info.name).name == info.name


def test_cli_health_version(versioned):
    import json

    from typer.testing import CliRunner

    from visionloop.cli.main import app

    store, info = versioned
    r = CliRunner().invoke(app, ["health", "--dataset-version", info.name, "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["version"] == info.name and data["counts"]["images"] == 800
