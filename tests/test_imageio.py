import numpy as np
import pytest
from PIL import Image

from facescan import imageio
from facescan.imageio import ImageLoadError, load_image

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
