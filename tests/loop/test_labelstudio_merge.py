"""The parts of the Label Studio round trip that need no server: merging a submission into stored labels, the
config check on reuse, and the API key's kind (legacy token or personal access token)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from visionloop.core.geometry import Box, Label
from visionloop.core.sample import Annotation, Source
from visionloop.loop.labelstudio import LabelStudio, LabelStudioError, _config_lacks, merge_labels

WHO = {"labelled_by": "a@example.com", "labelled_at": "2026-01-02T03:04:05+00:00"}


def ann(label, x0, y0, x1, y1, source=Source.IMPORTED, **attrs):
    return Annotation(label, Box(x0, y0, x1, y1), attributes=attrs, source=source)


def test_merge_keeps_equal_regions_and_counts_the_rest():
    a, b, c = ann("cat", 0, 0, 10, 10, pose="left"), ann("dog", 20, 20, 40, 40), ann("cat", 50, 50, 60, 60)
    pre = ann("cat", 1, 1, 2, 2, source=Source.MODEL)
    submitted = [
        ann("dog", 20, 20, 40, 40 + 1e-9, source=Source.HUMAN),  # b, within MATCH_PX, listed first
        ann("cat", 2, 0, 12, 10, source=Source.HUMAN),  # a moved 2 px: IoU 0.67 → modified
        ann("bird", 100, 100, 120, 120, source=Source.HUMAN),  # new
    ]  # c is gone
    m = merge_labels([a, b, c, pre], submitted, WHO)
    assert (m.added, m.deleted, m.modified, m.prelabels_replaced) == (1, 1, 1, 1)
    assert m.annotations[0] is b  # kept as stored (source, attributes), in stored order
    moved, bird = m.annotations[1:]
    assert moved.geometry == Box(2, 0, 12, 10) and moved.source is Source.HUMAN and moved.attributes == WHO
    assert bird.label == "bird" and bird.attributes == WHO


def test_merge_of_an_unchanged_submission_is_the_stored_labels_in_order():
    stored = [ann("cat", 0, 0, 10, 10), ann("cat", 0, 0, 10, 10), Annotation("day", Label())]
    m = merge_labels(stored, [Annotation("day", Label(), source=Source.HUMAN)] +
                     [ann("cat", 0, 0, 10, 10, source=Source.HUMAN)] * 2, WHO)
    assert m.annotations == stored and (m.added, m.deleted, m.modified) == (0, 0, 0)


def test_a_re_classed_box_is_modified_and_an_emptied_image_is_all_deleted():
    m = merge_labels([ann("cat", 0, 0, 10, 10)], [ann("dog", 0, 0, 10, 10, source=Source.HUMAN)], WHO)
    assert (m.added, m.deleted, m.modified) == (0, 0, 1) and m.annotations[0].label == "dog"
    m = merge_labels([ann("cat", 0, 0, 10, 10), ann("cat", 20, 20, 30, 30)], [], WHO)
    assert (m.annotations, m.added, m.deleted, m.modified) == ([], 0, 2, 0)


NEEDED = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
          '<Label value="raccoon"/></RectangleLabels><Number name="truncated" toName="image" perRegion="true"/>'
          '</View>')


def test_a_reused_project_config_must_hold_what_the_tasks_use():
    more = NEEDED.replace('<Label value="raccoon"/>', '<Label value="raccoon"/><Label value="fox"/>')
    assert _config_lacks(more, NEEDED) is None
    assert _config_lacks(NEEDED.replace("raccoon", "fox"), NEEDED) == \
        "label 'raccoon' in <rectanglelabels name='label'>"
    assert _config_lacks(NEEDED.replace('<Number name="truncated" toName="image" perRegion="true"/>', ""),
                         NEEDED) == "a <number name='truncated'> control"


def _jwt(claims):
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{part}.sig"


def test_a_personal_access_token_is_exchanged_for_a_bearer_token():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if request.url.path == "/api/token/refresh":
            assert json.loads(request.content) == {"refresh": pat}
            return httpx.Response(200, json={"access": "ACCESS"})
        return httpx.Response(200, json=[{"id": 3, "email": "x@example.com"}])

    pat = _jwt({"token_type": "refresh", "exp": 4102444800})
    with LabelStudio("http://ls", pat, transport=httpx.MockTransport(handler)) as ls:
        assert ls.users() == {3: "x@example.com"}
    assert seen == [("POST", "/api/token/refresh", None), ("GET", "/api/users", "Bearer ACCESS")]
    seen.clear()
    with LabelStudio("http://ls", "legacy0123", transport=httpx.MockTransport(handler)) as ls:
        ls.users()
    assert seen == [("GET", "/api/users", "Token legacy0123")]


def test_an_unreachable_server_is_one_clear_error():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(LabelStudioError, match=r"cannot reach Label Studio at http://ls \(ConnectError"):
        LabelStudio("http://ls", "k" * 10, transport=httpx.MockTransport(handler)).users()
    with pytest.raises(LabelStudioError, match="no Label Studio API key"):
        LabelStudio("http://ls", "")


def test_captions_merge_by_text_and_go_as_an_image_level_textarea(tmp_path):
    """A caption submitted unchanged keeps the stored one, an edited one is a new caption; sent as pre-labels,
    captions are one image-level TextArea in the config (not a per-region one)."""
    from PIL import Image

    from visionloop.core import Caption, ClassMap, ImageRef, Sample
    from visionloop.loop.labelstudio import _Prelabelled, _tasks_json

    cap = Annotation("", Caption("a cat on a mat"))
    m = merge_labels([ann("cat", 0, 0, 10, 10), cap],
                     [ann("cat", 0, 0, 10, 10, source=Source.HUMAN), Annotation("", Caption("a cat on a mat"),
                                                                                 source=Source.HUMAN),
                      Annotation("", Caption("a cat asleep"), source=Source.HUMAN)], WHO)
    assert (m.added, m.deleted, m.modified) == (1, 0, 0) and m.annotations[1] is cap
    assert m.annotations[2].geometry == Caption("a cat asleep") and m.annotations[2].label == ""
    Image.new("RGB", (20, 20)).save(tmp_path / "a.jpg")
    sample = Sample(ImageRef("a.jpg", 20, 20, path=str(tmp_path / "a.jpg")),
                    (Annotation("cat", Box(0, 0, 10, 10), source=Source.MODEL,
                                attributes={"pose": "left", "model_version": "m"}),
                     Annotation("", Caption("a cat on a mat"), source=Source.MODEL, attributes={"model_version": "m"})))
    tasks, config = _tasks_json(None, [_Prelabelled(1, sample, 2, 0)], ClassMap.from_names(["cat"]))  # type: ignore[arg-type]
    (result,) = [r for r in tasks[0]["predictions"][0]["result"] if r["from_name"] == "caption"]
    assert result["value"] == {"text": ["a cat on a mat"]}
    assert '<TextArea name="caption" toName="image"/>' in config and 'name="pose" toName="image" perRegion' in config
    assert 'name="caption" toName="image" perRegion' not in config
