"""The prediction log store: a batch lands in one transaction with its blobs; queries filter by model, time,
confidence and class; stats bucket the volume, the confidences and the class mix exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from visionloop.core.errors import VisionLoopError
from visionloop.store import Store
from visionloop.store import prediction_log as plog

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)


def _box(c: str, conf: float) -> dict:
    return {"box": {"x0": 1.0, "y0": 2.0, "x1": 3.0, "y1": 4.0}, "class": c, "class_id": 0, "confidence": conf}


def _entry(minutes: float, preds: list, *, model: str = "detect", version: int = 2, image: bytes = b"img") -> plog.LogEntry:
    return plog.LogEntry(created_at=T0 + timedelta(minutes=minutes), model=model, model_name=f"det-{version}",
                         model_version=version, task="detect", image=image, width=10, height=8, predictions=preds,
                         image_name="a.png", key_prefix="vl_abc")


@pytest.fixture
def store(tmp_path):
    with Store.init(tmp_path / "p") as s:
        yield s


def test_append_query_and_filters(store):
    entries = [_entry(0, [_box("square", 0.9), _box("disc", 0.3)], image=b"one"),
               _entry(30, [_box("disc", 0.4)], image=b"two"),
               _entry(70, [], image=b"one"),
               _entry(24 * 60 + 5, [_box("square", 0.6)], model="other", version=1, image=b"three")]
    assert plog.append(store, entries) == 4 and plog.append(store, []) == 0
    rows = plog.query(store)
    assert [r.id for r in rows] == [1, 2, 3, 4]
    first = rows[0]
    assert (first.max_confidence, first.min_confidence, first.classes) == (0.9, 0.3, ["disc", "square"])
    assert first.created_at == T0 and (first.width, first.height, first.key_prefix) == (10, 8, "vl_abc")
    assert store.blobs.get(first.image_sha256) == b"one" and rows[2].image_sha256 == first.image_sha256
    assert store.blobs.get(rows[1].image_sha256) == b"two"
    assert (rows[2].max_confidence, rows[2].min_confidence, rows[2].classes) == (None, None, [])
    ids = lambda **kw: [r.id for r in plog.query(store, **kw)]  # noqa: E731
    assert ids(model="detect") == [1, 2, 3] and ids(model="det-1") == [4] and ids(model="x") == []
    assert ids(below=0.5) == [2, 3] and ids(below=0.95) == [1, 2, 3, 4]
    assert ids(class_name="disc") == [1, 2] and ids(class_name="squ") == []
    assert ids(since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=70)) == [2]
    assert ids(limit=2, newest_first=True) == [4, 3]
    assert plog.count(store, model="detect", below=0.5) == 2
    with pytest.raises(VisionLoopError):
        plog.query(store, class_name="a,b")


def test_stats_buckets_histograms_and_class_mix(store):
    plog.append(store, [_entry(0, [_box("square", 0.9), _box("disc", 0.3)]),
                        _entry(30, [_box("disc", 0.45)]),
                        _entry(3 * 60, []),
                        _entry(3 * 60 + 1, [_box("square", 1.0)], version=3)])
    s = plog.stats(store, bucket="hour", bins=4)
    assert (s.images, s.predictions, s.no_prediction) == (4, 4, 1)
    assert s.volume == {"2026-12-01T10:00:00+00:00": 2, "2026-12-01T11:00:00+00:00": 0,
                        "2026-12-01T12:00:00+00:00": 0, "2026-12-01T13:00:00+00:00": 2}
    assert s.confidence_hist == [0, 2, 0, 2] and s.top_confidence_hist == [0, 1, 0, 2]
    assert s.class_mix["2026-12-01T10:00:00+00:00"] == {"disc": 2, "square": 1}
    assert s.class_mix["2026-12-01T11:00:00+00:00"] == {}
    assert s.by_model == {"det-2 v2": 3, "det-3 v3": 1} and s.classes == ["disc", "square"]
    d = plog.stats(store, bucket="day", model="detect", since=T0 + timedelta(minutes=1))
    assert d.volume == {"2026-12-01T00:00:00+00:00": 3} and d.images == 3
    assert plog.stats(store).to_json()["first"] == T0.isoformat()
