"""The streaming JSON walker against json.loads, with windows small enough to cut every token."""

import json

import pytest

from visionloop.core import FormatError
from visionloop.formats._jsonwalk import array_cut, resume, top_level

DOC = {
    "info": {"description": "ünïcode ☃ and \"quotes\"", "year": 2026},
    "images": [{"id": i, "file_name": f"dir/ímage_{i}.jpg", "width": 640, "height": 480} for i in range(30)],
    "annotations": [{"id": k, "image_id": k % 30, "bbox": [1.5e2, -0.25, 12345678901234, 3], "segmentation": [],
                     "attributes": {"note": "a,b]c}"}} for k in range(90)],
    "empty": [],
    "categories": [{"id": 7, "name": "thing"}],
}


def _walk(path, chunk):
    out = {}
    for key, value in top_level(path, stream={"images", "annotations", "empty"}, chunk=chunk):
        out[key] = list(value) if key in ("images", "annotations", "empty") else value
    return out


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_same_as_json_loads_at_any_window(tmp_path, indent, chunk):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(DOC, indent=indent, ensure_ascii=False), encoding="utf-8")
    assert _walk(p, chunk) == json.loads(p.read_text(encoding="utf-8"))


def test_consumer_may_skip_an_array(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(DOC))
    keys = [k for k, _ in top_level(p, stream={"images", "annotations"}, chunk=5)]
    assert keys == ["info", "images", "annotations", "empty", "categories"]


@pytest.mark.parametrize("text, where", [
    ('{"images": [{"id": 1}, {"id": 2]}', "line 1"),
    ('{"images": [1, 2}\n', "line 1"),
    ('{"a": 1,\n "b": }', "line 2"),
    ('[1, 2]', None),
])
def test_errors_name_the_file_and_line(tmp_path, text, where):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(FormatError) as e:
        _walk(p, 4)
    assert "bad.json" in str(e.value)
    if where:
        assert where in str(e.value)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_slices_between_cuts_give_the_whole_array(tmp_path, chunk):
    """stop= gives the array's offset; array_cut finds cuts; resume(end=…) reads each slice; together: the array."""
    doc = {**DOC, "annotations": sorted(DOC["annotations"], key=lambda a: a["image_id"])}
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    key, at = list(top_level(p, stream=set(), stop={"annotations"}))[-1]
    assert key == "annotations" and p.read_bytes()[at:at + 1] == b"["
    size = p.stat().st_size
    cuts, firsts = [], []
    for target in range(at, size, 700):
        found = array_cut(p, target, lambda e: e["image_id"])
        if found and (not cuts or found[0] > cuts[-1]):
            cuts.append(found[0])
            firsts.append(found[1])
    assert len(cuts) >= 5
    got = []
    bounds = [at, *cuts]
    for k, start in enumerate(bounds):
        end = bounds[k + 1] if k + 1 < len(bounds) else None
        for key, value in resume(p, start, "annotations", stream={"annotations", "empty"}, inside=k > 0, end=end,
                                 chunk=chunk):
            if key == "annotations":
                got += list(value)
            elif end is None:  # the last slice walks on to the end of the document
                assert key in ("empty", "categories")
                if key == "empty":
                    assert list(value) == []
    assert got == doc["annotations"]
    # each cut is at a change of image: its element is the first of its image
    for first in firsts:
        i = got.index(first)
        assert i > 0 and got[i - 1]["image_id"] != first["image_id"]


def test_a_cut_inside_an_element_is_caught(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps({"a": [{"x": {"y": 1}, "z": 2}, {"x": {"y": 3}, "z": 4}]}))
    (_, at), = list(top_level(p, stream=set(), stop={"a"}))
    inner = p.read_bytes().index(b'{"y": 3}')
    with pytest.raises(FormatError):
        for _, value in resume(p, at, "a", stream={"a"}, end=inner):
            list(value)


# Elements are decoded by orjson in batches cut at `}, {`; the cases where that guess is wrong or orjson
# reads differently must give exactly what one-by-one decoding (the standard library) gives.
TRICKY = [
    {"id": 1, "note": "}, {", "nested": [{"a": 1}, {"b": {"c": 2}}, {"d": "}, {\"e\": 1}"}]},
    {"id": 2, "big": 2 ** 70, "neg": -(2 ** 65)},  # beyond 64 bits: orjson refuses, json reads them
    {"id": 3, "nan": float("nan"), "inf": float("inf"), "minf": float("-inf")},
    {"id": 4, "surrogate": "\ud800 lone"},  # escaped as \\ud800: json keeps it, orjson refuses
    {"id": 5, "zero": -0.0, "tiny": 5e-324, "exp": 1.5e300, "text": "ünïcode ☃ \"q\" \\ /"},
    *({"id": k, "image_id": k // 3, "bbox": [k, k + 0.5, 3, 4], "segmentation": [[1, 2, 3, 4, 5, 6]]}
      for k in range(6, 400)),
    [1, 2, {"x": "}, {"}],  # not an object: decoded on its own
    {"id": 401, "after": "the array element"},
]


@pytest.mark.parametrize("batch", [40, 300, 256 << 10])
@pytest.mark.parametrize("chunk", [1, 97, 1 << 20])
@pytest.mark.parametrize("indent", [None, 1])
def test_batches_read_exactly_what_one_by_one_reads(tmp_path, monkeypatch, batch, chunk, indent):
    from visionloop.formats import _jsonwalk

    monkeypatch.setattr(_jsonwalk, "_BATCH", batch)
    decoded = []
    real = _jsonwalk._batch

    def spy(text, pos):
        got = real(text, pos)
        if got[0] is not None:
            decoded.extend(got[0])
        return got

    monkeypatch.setattr(_jsonwalk, "_batch", spy)
    doc = {"annotations": TRICKY, "tail": 1}
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(doc, indent=indent, ensure_ascii=True), encoding="utf-8")
    walked = _walk(p, chunk)
    expected = json.loads(p.read_text(encoding="utf-8"))
    assert json.dumps(walked) == json.dumps(expected)  # NaN != NaN: compare the text
    assert [type(v) for e in walked["annotations"] if isinstance(e, dict) for v in e.values()] == \
        [type(v) for e in expected["annotations"] if isinstance(e, dict) for v in e.values()]
    if batch == 300 and chunk > 1:  # (a batch holding a refused element is decoded one by one: all of it at 256K)
        assert len(decoded) > 300  # the plain elements did go through orjson


def test_a_malformed_element_after_many_batches_names_its_line(tmp_path):
    lines = [json.dumps({"id": k, "bbox": [1, 2, 3, 4]}) for k in range(5000)]
    lines[4321] = '{"id": 4321, "bbox": [1, 2, 3, 4}'
    p = tmp_path / "bad.json"
    p.write_text('{"annotations": [\n' + ",\n".join(lines) + "\n]}")
    seen = []
    with pytest.raises(FormatError) as e:
        for _, value in top_level(p, stream={"annotations"}):
            seen.extend(a for a in value)
    assert "line 4323" in str(e.value) and "bad.json" in str(e.value)
    assert [a["id"] for a in seen] == list(range(4321))
