"""Import counts what the reader saw and did not keep (`skipped`, per reason) in its report and the batch's
summary, and --strict refuses it with one line naming the file and element (issue 12, category 3).
The LabelMe file follows labelme's `label_file.py` (version, flags, shapes, imagePath, imageData, size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.ingest import import_dataset
from visionloop.store import Store


def _labelme(root: Path) -> Path:
    root.mkdir()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(root / "a.png")
    shapes = [{"label": "cat", "points": [[1, 1], [5, 4]], "group_id": None, "shape_type": "rectangle", "flags": {}},
              {"label": "edge", "points": [[0, 0], [3, 3]], "group_id": None, "shape_type": "line", "flags": {}}]
    (root / "a.json").write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.png",
                                             "imageData": None, "imageHeight": 6, "imageWidth": 8}))
    return root


def test_import_reports_skipped_and_strict_refuses(tmp_path: Path) -> None:
    src = _labelme(tmp_path / "lm")
    store = Store.init(tmp_path / "p")
    with pytest.raises(FormatError, match=r"a\.json \(shapes\[1\]\): line shape not read"):
        import_dataset(store, src, strict=True)
    assert store.stats().images == 0
    report = import_dataset(store, src)
    assert report.skipped == {"line shape: no such geometry in visionloop": 1}
    assert report.to_json()["skipped"] == report.skipped
    assert report.counts["images_added"] == 1 and report.counts["annotations_added"] == 1
    (batch,) = store.batches()
    assert batch.summary["skipped"] == report.skipped  # `visionloop batch show` lists the summary
    store.close()
