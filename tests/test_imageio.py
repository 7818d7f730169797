import io
import os
import struct
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from facescan import imageio
from facescan.imageio import ImageLoadError, load_image

from . import badinputs
from .badinputs import bad_files, gradient, odd_but_valid_files


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return odd_but_valid_files(tmp_path_factory.mktemp("odd"))


@pytest.mark.parametrize(
    "name,problem",
    [("empty.jpg", "file is empty"), ("text.jpg", "not a recognized image format"),
     ("truncated.jpg", "truncated"), ("corrupt.png", "image"), ("document.pdf", "not a recognized image format"),
     ("bomb.png", "pixel limit")],
)
def test_bad_files_raise_clear_errors(bad, name, problem):
    with pytest.raises(ImageLoadError) as err:
        load_image(bad[name])
    message = str(err.value)
    assert name in message, "the error must name the input"
    assert problem in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="0 bytes"):
        load_image(b"")


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "palette.png", "cmyk.jpg", "bilevel.png", "gray16.png",
                                  "la.png"])
def test_unusual_modes_load_as_rgb(odd, name):
    img = load_image(odd[name])
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (64, 96, 3)
    assert img.pixels.std() > 5, "content must survive the conversion"


def test_rgba_alpha_is_composited_on_white(tmp_path):
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., 0] = 255  # red, fully transparent
    p = tmp_path / "clear.png"
    Image.fromarray(arr, "RGBA").save(p)
    assert (load_image(p).pixels == 255).all()


def test_sixteen_bit_keeps_its_range(odd):
    img = load_image(odd["gray16.png"])
    assert img.pixels.max() >= 250 and img.pixels.min() <= 5


def test_exif_orientation_is_applied(odd):
    img = load_image(odd["rotated.jpg"])
    assert img.pixels.shape[:2] == (96, 64)
    assert img.original_size == (64, 96)


def test_huge_image_is_downscaled_with_scale_recorded(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_SIDE", 1000)
    img = load_image(np.zeros((1500, 3000, 3), np.uint8), max_side=1000)
    assert img.pixels.shape[:2] == (500, 1000)
    assert img.scale == pytest.approx(1 / 3)
    assert img.original_size == (3000, 1500)


def test_sources_of_every_kind(tmp_path):
    pil = gradient()
    p = tmp_path / "g.png"
    pil.save(p)
    from_path, from_bytes, from_pil = load_image(p), load_image(p.read_bytes()), load_image(pil)
    assert np.array_equal(from_path.pixels, from_bytes.pixels) and np.array_equal(from_path.pixels, from_pil.pixels)
    assert load_image(np.zeros((5, 6), np.uint8)).pixels.shape == (5, 6, 3)
    assert load_image(np.ones((5, 6, 3), np.float32)).pixels.max() == 255
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((5, 6, 7), np.uint8))
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(np.full((4, 4), np.nan, np.float32))


def test_expand_inputs_keeps_non_images_and_skips_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub" / "b.txt").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"x")
    files = imageio.expand_inputs([tmp_path])
    assert [f.name for f in files] == ["a.jpg", "b.txt"]


# -- issue 13: every failure to read one input is that input's ImageLoadError ---------------------------------------

@pytest.mark.parametrize("exc", [RuntimeError("boom"), NotImplementedError("no decoder"), ValueError("bad header"),
                                 struct.error("unpack"), EOFError(), ZeroDivisionError("div"), MemoryError(),
                                 SystemError("tile"), KeyError("mode"), TypeError("x")])
@pytest.mark.parametrize("stage", ["open", "convert"])
def test_any_decoder_exception_becomes_this_inputs_error(monkeypatch, exc, stage):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(*((imageio.Image, "open") if stage == "open" else (imageio, "_to_rgb")), fail)
    with pytest.raises(ImageLoadError) as err:
        load_image(_png_bytes(), name="photo.png")
    assert str(err.value).startswith("photo.png: ")
    if isinstance(exc, MemoryError):
        assert "memory" in err.value.problem
    else:
        assert type(exc).__name__ in err.value.problem or str(exc) in err.value.problem


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_not_swallowed(monkeypatch, exc):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(imageio.Image, "open", fail)
    with pytest.raises(exc):
        load_image(_png_bytes())


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    gradient().save(buf, "PNG")
    return buf.getvalue()


def test_pillow_refusals_keep_their_specific_messages():
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(badinputs.png_claiming(100_000, 100_000))
    with pytest.raises(ImageLoadError, match="text metadata"):
        load_image(badinputs.png_with_text(b"zTXt"))
    with pytest.raises(ImageLoadError, match="text metadata"):
        load_image(badinputs.png_with_text(b"iTXt", after_pixels=True))
    assert load_image(badinputs.png_with_text(b"zTXt", size=100_000)).size == (96, 64)
    with pytest.raises(ImageLoadError, match="NotImplementedError"):
        load_image(badinputs.dds_bad_pixel_format())


def test_error_messages_are_one_printable_line():
    with pytest.raises(ImageLoadError) as err:
        load_image(b"P6\n2\x00\x07\xff 16\n255\n" + bytes(64))
    assert str(err.value).isprintable() and len(err.value.problem) < 300


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_transpose(orientation):
    data = badinputs.jpeg_with_exif(orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(load_image(data).pixels, expected)


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_out_of_range_or_unreadable_exif_leaves_pixels_as_stored(orientation):
    assert load_image(badinputs.jpeg_with_exif(orientation)).size == (96, 64)
    assert load_image(badinputs.jpeg_with_exif(raw=b"Exif\0\0II*\0" + b"\xff" * 40)).size == (96, 64)


def _within(seconds: float, fn, *args):
    """Run ``fn`` on a thread; fail (instead of hanging the suite) if it blocks longer than ``seconds``."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} blocked for over {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _error(source) -> str:
    try:
        load_image(source)
    except ImageLoadError as e:
        return str(e)
    raise AssertionError(f"{source} loaded")


def test_special_files_are_refused_without_being_opened(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dirlink.jpg").symlink_to(tmp_path / "dir")
    expected = {"fifo.jpg": "not a regular file (a FIFO", "zero.jpg": "not a regular file (a character device",
                "broken.jpg": "broken link", "loop.jpg": "broken link", "dirlink.jpg": "link to a folder",
                "dir": "is a folder"}
    for name, problem in expected.items():
        message = _within(10, _error, tmp_path / name)
        assert message.startswith(str(tmp_path / name)) and problem in message, message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permission bits")
def test_unreadable_file_is_permission_denied(tmp_path):
    p = tmp_path / "locked.jpg"
    gradient().save(p)
    p.chmod(0)
    try:
        assert "permission denied" in _error(p)
    finally:
        p.chmod(0o644)


@pytest.mark.parametrize("source,problem", [(None, "unsupported input type"), (3.5, "unsupported input type"),
                                            ("bad\0name.jpg", "cannot read file"),
                                            (np.zeros((2, 2, 2, 2, 3), np.uint8), "shape"),
                                            (np.zeros((4, 4), np.int64), "dtype")])
def test_unusable_sources(source, problem):
    assert problem in _error(source)


def test_expand_inputs_lists_every_non_folder_entry_and_never_opens_them(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden_dir").mkdir()
    (tmp_path / ".hidden_dir" / "x.jpg").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    os.mkfifo(tmp_path / "sub" / "fifo.jpg")
    (tmp_path / "sub" / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "sub" / "broken.jpg").symlink_to(tmp_path / "nowhere")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a link to a folder: listed, not followed (no loop)
    files = _within(10, imageio.expand_inputs, [tmp_path])
    assert [str(f.relative_to(tmp_path)) for f in files] == ["a.jpg", "sub/broken.jpg", "sub/fifo.jpg", "sub/up",
                                                             "sub/zero.jpg"]
    assert imageio.expand_inputs([tmp_path / "sub" / "fifo.jpg"]) == [tmp_path / "sub" / "fifo.jpg"]
