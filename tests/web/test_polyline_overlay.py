"""The web overlay draws a polyline as an open SVG polyline through its points, not as its bounding box."""

from types import SimpleNamespace

from visionloop.web import views
from visionloop.web.routes import templates


def test_polyline_is_drawn_as_a_line():
    row = SimpleNamespace(id=7, class_id=1, kind="polyline", x0=2.0, y0=3.5, x1=30.25, y1=10.0,
                          data={"points": [2.0, 3.5, 20.0, 10.0, 30.25, 4.0]}, confidence=None)
    ann = views._ann(row, {1: {"name": "lane", "colour": "#ff0000"}})
    assert ann["line"] == [2.0, 3.5, 20.0, 10.0, 30.25, 4.0] and "polygons" not in ann
    macros = templates.env.get_template("macros.html").module
    svg = str(macros.overlay(60, 40, [ann]))
    assert '<polyline class="ann c-lane" data-ann="7" points="2.0,3.5 20.0,10.0 30.25,4.0 "' in svg
    assert "fill:none" in svg and "<rect" not in svg
