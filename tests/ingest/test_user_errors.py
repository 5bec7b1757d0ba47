"""User mistakes are one line, never a traceback (issue 11, item 7)."""

import struct
import subprocess
import sys
import zlib

import pytest

from visionloop.core.errors import FormatError, ImageError, ProjectError
from visionloop.formats import read
from visionloop.formats.images import probe
from visionloop.store import Store


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="too many pixels to decode safely") as e:
        probe(_png_header(50000, 50000), path=tmp_path / "bomb.png")
    assert e.value.path == str(tmp_path / "bomb.png")


def test_deeply_nested_json_is_a_format_error(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text('{"images": [], "info": ' + "[" * 100000 + "]" * 100000 + ', "annotations": []}')
    with pytest.raises(FormatError, match="nested too deeply"):
        list(read(f, format="coco"))


def test_init_on_an_existing_file_is_a_project_error(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ProjectError, match="a file is in the way"):
        Store.init(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "mine"
    proc = subprocess.run([sys.executable, "-m", "visionloop.cli.main", "init", str(tmp_path / "f")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "a file is in the way" in proc.stderr


@pytest.fixture
def coco(tmp_path):
    from visionloop.demo import synthetic
    from visionloop.formats import write

    write(synthetic.shapes(2, folder=tmp_path / "render"), tmp_path / "coco", format="coco",
          classes=synthetic.classes())
    return tmp_path / "coco"


def test_a_full_disk_is_one_line_and_leaves_nothing(coco, tmp_path, monkeypatch):
    """ENOSPC (simulated: this machine's disk is not full) while writing images."""
    import errno

    from visionloop.formats import yolo
    from visionloop.formats.convert import convert
    from visionloop.formats.output import OutputError

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "a.jpg")

    monkeypatch.setattr(yolo, "place_image", full)
    with pytest.raises(OutputError) as e:
        convert(coco, tmp_path / "out", to="yolo")
    assert "no space left on the device (a.jpg)" in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "render"]


def test_a_read_only_output_folder_is_one_line(coco, tmp_path, monkeypatch):
    """EACCES (simulated: the tests may run as root, which ignores permissions)."""
    import errno
    import pathlib

    from visionloop.formats.convert import convert
    from visionloop.formats.output import OutputError

    def denied(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", denied)
    with pytest.raises(OutputError, match="cannot write the output: permission denied"):
        convert(coco, tmp_path / "ro" / "out", to="yolo")


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    from visionloop.formats.base import image_size

    big = _png_header(20000, 10000)  # 200 M pixels: over the default limit
    with pytest.raises(ImageError, match=r"20000×10000 = 200,000,000 pixels, the limit is 178,956,970"):
        probe(big, path=tmp_path / "big.png")
    monkeypatch.setenv("VISIONLOOP_MAX_IMAGE_PIXELS", "0")  # no limit: only the header is read
    assert (probe(big, path=tmp_path / "big.png").width, probe(big, path="x").height) == (20000, 10000)
    monkeypatch.setenv("VISIONLOOP_MAX_IMAGE_PIXELS", "1000")
    (tmp_path / "s.png").write_bytes(_png_header(50, 30))
    with pytest.raises(ImageError, match=r"50×30 = 1,500 pixels, the limit is 1,000"):
        image_size(tmp_path / "s.png")
    monkeypatch.setenv("VISIONLOOP_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImageError, match="VISIONLOOP_MAX_IMAGE_PIXELS='lots' is not a whole number"):
        probe(big, path="x")
