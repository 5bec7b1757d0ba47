"""Import counts what the reader saw and did not keep (`skipped`, per reason) in its report and the batch's
summary, and --strict refuses it with one line naming the file and element (issue 12, category 3).
The CVAT file follows CVAT's XML 1.1 (docs.cvat.ai "XML annotation format": a <cuboid> beside a <box>); the
element skipped is the cuboid, which visionloop has no geometry for. (A LabelMe `line` was the example before
visionloop had a Polyline: it is read now.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.ingest import import_dataset
from visionloop.store import Store

CUBOID = ('    <cuboid label="cat" source="manual" occluded="0" xtl1="1" ytl1="1" xbl1="1" ybl1="4" xtr1="4" ytr1="1" '
          'xbr1="4" ybr1="4" xtl2="2" ytl2="0" xbl2="2" ybl2="3" xtr2="5" ytr2="0" xbr2="5" ybr2="3" z_order="0">\n'
          "    </cuboid>\n")


def _cvat(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 6), (200, 10, 10)).save(root / "images" / "a.png")
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
        "  <meta><task><labels><label><name>cat</name><type>any</type><attributes/></label></labels></task></meta>\n"
        '  <image id="0" name="a.png" width="8" height="6">\n'
        '    <box label="cat" source="manual" occluded="0" xtl="1" ytl="1" xbr="5" ybr="4" z_order="0">\n'
        "    </box>\n" + CUBOID + "  </image>\n</annotations>\n")
    return root


def test_import_reports_skipped_and_strict_refuses(tmp_path: Path) -> None:
    src = _cvat(tmp_path / "cvat")
    store = Store.init(tmp_path / "p")
    with pytest.raises(FormatError, match=r"annotations\.xml \(<image id='0' name='a.png'> <cuboid> 1\): <cuboid> not read"):
        import_dataset(store, src, strict=True)
    assert store.stats().images == 0
    report = import_dataset(store, src)
    assert report.skipped == {"<cuboid>: no such geometry in visionloop": 1}
    assert report.to_json()["skipped"] == report.skipped
    assert report.counts["images_added"] == 1 and report.counts["annotations_added"] == 1
    (batch,) = store.batches()
    assert batch.summary["skipped"] == report.skipped  # `visionloop batch show` lists the summary
    store.close()
