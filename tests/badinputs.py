"""Generators for every kind of bad or unusual input the loader must handle (used by several tests)."""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gradient(w: int = 96, h: int = 64) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2), "RGB")


def exif_rotated_jpeg() -> bytes:
    """A 96x64 JPEG whose EXIF orientation (6) says: rotate 90° clockwise to view (→ 64x96)."""
    img = gradient()
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(img, exif=exif.tobytes())


def bad_files(folder: Path) -> dict[str, Path]:
    """Write files that must each fail with a clear error; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _jpeg(gradient(256, 256))
    files = {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image at all\n",
        "truncated.jpg": good[: len(good) // 2],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50,
        "document.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
    }
    # decompression bomb: a tiny PNG that claims 12,000 x 12,000 pixels
    bomb = Image.new("1", (12_000, 12_000))
    files["bomb.png"] = _png(bomb)
    paths = {}
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        paths[name] = p
    return paths


def odd_but_valid_files(folder: Path) -> dict[str, Path]:
    """Images in unusual modes that must load as RGB; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = gradient()
    arr16 = np.linspace(0, 65535, 96 * 64).reshape(64, 96).astype(np.uint16)
    imgs = {
        "gray.png": base.convert("L"),
        "rgba.png": base.convert("RGBA"),
        "palette.png": base.convert("P"),
        "cmyk.jpg": base.convert("CMYK"),
        "bilevel.png": base.convert("1"),
        "gray16.png": Image.fromarray(arr16),
        "la.png": base.convert("LA"),
    }
    paths = {}
    for name, img in imgs.items():
        p = folder / name
        img.save(p)
        paths[name] = p
    p = folder / "rotated.jpg"
    p.write_bytes(exif_rotated_jpeg())
    paths["rotated.jpg"] = p
    return paths


# -- the bad-input corpus (issue 13): every kind of input that must fail alone, or load despite being odd ----------

@dataclass
class Case:
    """One input of the corpus: ``problem`` is a phrase its error must contain; ``None``: it must load."""

    kind: str
    source: Any
    problem: str | None
    listed: bool = True  # a path that expand_inputs lists when its folder is named

    @property
    def is_path(self) -> bool:
        return isinstance(self.source, Path)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = _chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def png_with_text(kind: bytes = b"zTXt", size: int = 2_000_000, after_pixels: bool = False) -> bytes:
    """A valid 96x64 PNG with ``size`` bytes of compressed text (Pillow refuses over 1 MB: "Decompressed Data Too
    Large"), before or after the pixels."""
    text = zlib.compress(b"x" * size, 9)
    body = b"Comment\0" + (b"\0" + text if kind == b"zTXt" else b"\1\0\0\0" + text)
    good = _save(gradient(), "PNG")
    cut = good.index(b"IEND") - 4 if after_pixels else good.index(b"IDAT") - 4
    return good[:cut] + _chunk(kind, body) + good[cut:]


def jpeg_with_exif(orientation: Any = None, raw: bytes | None = None) -> bytes:
    """A 96x64 JPEG with an EXIF orientation tag (any int, even out of range) or ``raw`` APP1 bytes."""
    if raw is None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        raw = exif.tobytes()
    return _jpeg(gradient(), exif=raw)


def bmp_claiming(width: int, height: int, bits: int = 24) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + header + b"\0" * 64


def gif_claiming(width: int, height: int) -> bytes:
    good = _save(gradient().convert("P"), "GIF")
    return good[:6] + struct.pack("<HH", width, height) + good[10:]


def tiff_claiming(width: int, height: int) -> bytes:
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
            (277, 3, 1), (278, 4, height), (279, 4, 1)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, typ, 1, v) for t, typ, v in tags)
    return b"II*\0" + struct.pack("<I", 8 + 1) + b"\0" + ifd + b"\0\0\0\0"


def dds_bad_pixel_format() -> bytes:
    """A DDS header whose pixel-format flags no decoder knows (Pillow raises NotImplementedError)."""
    good = bytearray(_save(gradient().convert("RGBA"), "DDS"))
    good[80:84] = struct.pack("<I", 0x200000)  # DDS_PIXELFORMAT.dwFlags
    return bytes(good)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.jpg", _jpeg(gradient()))
    return buf.getvalue()


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def _truncated(fmt: str, mode: str = "RGB", keep: float = 0.5, **kw) -> bytes:
    data = _save(gradient(256, 192).convert(mode), fmt, **kw)
    return data[: max(1, int(len(data) * keep))]


NOT_IMAGE = "not a recognized image format"
CORRUPT = "corrupt"  # "corrupt or truncated image data" / "corrupt or unsupported image data"


def _file_cases() -> dict[str, tuple[bytes, str | None]]:
    """File name → (bytes, expected problem); written into the corpus folder."""
    rng = np.random.default_rng(13)
    jpeg = _jpeg(gradient(256, 192))
    png = _save(gradient(256, 192), "PNG")
    cases: dict[str, tuple[bytes, str | None]] = {
        "empty.jpg": (b"", "file is empty"),
        "text.jpg": (b"this is not an image at all\n", NOT_IMAGE),
        "page.png": (b"<!DOCTYPE html><html><body><img src=x.png></body></html>\n", NOT_IMAGE),
        "document.pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", NOT_IMAGE),
        "archive.zip": (_zip_bytes(), NOT_IMAGE),
        "random.jpg": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), NOT_IMAGE),
        "psd_garbage.psd": (b"8BPS\0\1" + bytes(20) + b"\xff" * 64, NOT_IMAGE),
        "jpeg_soi_only.jpg": (b"\xff\xd8\xff", NOT_IMAGE),
        "jpeg_truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "jpeg_header_only.jpg": (jpeg[:300], "Truncated File Read"),
        "jpeg_cmyk_truncated.jpg": (_truncated("JPEG", "CMYK"), "truncated"),
        "png_corrupt.png": (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "cannot read image"),
        "png_truncated.png": (png[: len(png) // 2], "truncated"),
        "png_bad_crc.png": (png[:29] + bytes([png[29] ^ 0xFF]) + png[30:], NOT_IMAGE),
        "png_no_idat.png": (png[:33] + _chunk(b"IEND", b""), CORRUPT),
        "png_ztxt_1mb.png": (png_with_text(b"zTXt"), "text metadata"),
        "png_itxt_1mb.png": (png_with_text(b"iTXt"), "text metadata"),
        "png_ztxt_after_pixels.png": (png_with_text(b"zTXt", after_pixels=True), "text metadata"),
        "png_bomb_12000.png": (_save(Image.new("1", (12_000, 12_000)), "PNG"), "pixel limit"),
        "png_claims_100000x100000.png": (png_claiming(100_000, 100_000), "decompression bomb"),
        "png_claims_0x0.png": (png_claiming(0, 0), NOT_IMAGE),
        "gif_truncated.gif": (_truncated("GIF", "P", 0.3), "truncated"),
        "gif_claims_65535x65535.gif": (gif_claiming(65535, 65535), "decompression bomb"),
        "webp_truncated.webp": (_truncated("WEBP"), "cannot read image"),
        "webp_riff_garbage.webp": (b"RIFF\x40\0\0\0WEBPVP8 " + b"\xab" * 60, "cannot read image"),
        "tiff_truncated.tif": (_truncated("TIFF"), "truncated"),
        "tiff_bad_ifd_offset.tif": (b"II*\0\xff\xff\xff\x7f" + bytes(64), NOT_IMAGE),
        "tiff_claims_200000x200000.tif": (tiff_claiming(200_000, 200_000), "decompression bomb"),
        "bmp_truncated.bmp": (_truncated("BMP"), "truncated"),
        "bmp_claims_100000x100000.bmp": (bmp_claiming(100_000, 100_000), "decompression bomb"),
        "bmp_7_bit.bmp": (bmp_claiming(16, 16, bits=7), "Unsupported BMP pixel depth"),
        "ico_truncated.ico": (_truncated("ICO", "RGBA", 0.4), NOT_IMAGE),
        "ico_200_entries.ico": (b"\0\0\1\0\xc8\0" + bytes(64), NOT_IMAGE),
        "dds_bad_pixel_format.dds": (dds_bad_pixel_format(), "NotImplementedError"),
        "im_bad_header.im": (b"Image type: RGB image\r\nImage size (x*y): 2q*16\r\n\x1a" + bytes(600), CORRUPT),
        "ppm_bad_header.ppm": (b"P6\n2q 16\n255\n" + bytes(64), CORRUPT),
        "ppm_truncated.ppm": (_truncated("PPM"), "truncated"),
        "tga_truncated.tga": (_truncated("TGA"), "truncated"),
        "pcx_truncated.pcx": (_truncated("PCX"), "truncated"),
        "sgi_truncated.sgi": (_truncated("SGI"), "truncated"),
        "qoi_truncated.qoi": (_truncated("QOI"), "not enough image data"),
        "blp_bad_encoding.blp": (_patched(_save(gradient().convert("P"), "BLP"), 8, b"\x0e"), CORRUPT),
        "xbm_bad_header.xbm": (b"#define im_width 2\xb5\n#define im_height 16\nstatic char im_bits[] = {\n", CORRUPT),
    }
    if features.check("jpg_2000"):
        cases["jp2_truncated.jp2"] = (_truncated("JPEG2000"), "broken data stream")
    if features.check("avif"):
        cases["avif_truncated.avif"] = (_truncated("AVIF", keep=0.9), "truncated")
        avif = _save(gradient(), "AVIF", quality=50)
        extent_length = avif.index(b"iloc") + 22  # the image item's extent length, 0: "Missing or empty image item"
        cases["avif_empty_item.avif"] = (_patched(avif, extent_length, bytes(4)), "RuntimeError")
    return cases


def _valid_files() -> dict[str, bytes]:
    """Odd but valid images that must load (and, in crops mode, give one face each)."""
    base = gradient()
    pal = base.convert("P")
    pal.info["transparency"] = 0
    gray16 = Image.fromarray(np.linspace(0, 65535, 96 * 64).reshape(64, 96).astype(np.uint16))
    floats = np.linspace(-1, 1, 96 * 64, dtype=np.float32).reshape(64, 96)
    floats[0, :3] = [np.nan, np.inf, -np.inf]
    frames = [gradient(), gradient().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files = {
        "gray16.png": _save(gray16, "PNG"), "gray16.tif": _save(gray16, "TIFF"), "gray16.pgm": _save(gray16, "PPM"),
        "float32_nan.tif": _save(Image.fromarray(floats, "F"), "TIFF"),
        "palette_transparency.png": _save(pal, "PNG", transparency=0),
        "palette_transparency.gif": _save(pal, "GIF", transparency=0),
        "cmyk.jpg": _save(base.convert("CMYK"), "JPEG"), "cmyk.tif": _save(base.convert("CMYK"), "TIFF"),
        "la.png": _save(base.convert("LA"), "PNG"), "bilevel.png": _save(base.convert("1"), "PNG"),
        "webp_lossless_alpha.webp": _save(base.convert("RGBA"), "WEBP", lossless=True),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "one_pixel.png": _save(Image.new("RGB", (1, 1), (200, 100, 50)), "PNG"),
        "one_pixel.jpg": _save(Image.new("RGB", (1, 1), (200, 100, 50)), "JPEG"),
        "wide_30000x2.png": _save(gradient(30_000, 2), "PNG"), "tall_2x20000.png": _save(gradient(2, 20_000), "PNG"),
        "png_small_ztxt.png": png_with_text(b"zTXt", size=100_000),
        "exif_garbage.jpg": jpeg_with_exif(raw=b"Exif\0\0II*\0" + b"\xff" * 40),
        # one IFD entry: Orientation (0x0112) as ASCII text "A"
        "exif_orientation_text.jpg": jpeg_with_exif(raw=b"Exif\0\0MM\0*" + struct.pack(">IHHHI4sI", 8, 1, 0x0112, 2,
                                                                                            2, b"A", 0)),
    }
    for orientation in (0, 3, 5, 8, 9, 65535):
        files[f"exif_orientation_{orientation}.jpg"] = jpeg_with_exif(orientation)
    return files


def _special_paths(folder: Path) -> list[Case]:
    """FIFOs, sockets, device links, broken links, folders, missing and unreadable files (made in ``folder``)."""
    good = folder / "link_target.png"
    gradient().save(good)
    (folder / "folder_named_like.jpg").mkdir()
    os.mkfifo(folder / "fifo.jpg")
    links = {"dev_zero.jpg": "/dev/zero", "dev_null.jpg": "/dev/null", "broken_link.jpg": folder / "gone.jpg",
             "link_loop_a.jpg": folder / "link_loop_b.jpg", "link_loop_b.jpg": folder / "link_loop_a.jpg",
             "link_to_folder.jpg": folder / "folder_named_like.jpg", "link_to_good.png": good}
    for name, target in links.items():
        (folder / name).symlink_to(target)
    cases = [
        Case("fifo", folder / "fifo.jpg", "not a regular file"),
        Case("link to /dev/zero", folder / "dev_zero.jpg", "not a regular file"),
        Case("link to /dev/null", folder / "dev_null.jpg", "not a regular file"),
        Case("broken link", folder / "broken_link.jpg", "broken link"),
        Case("link loop", folder / "link_loop_a.jpg", "broken link"),
        Case("link loop, other end", folder / "link_loop_b.jpg", "broken link"),
        Case("link to a folder", folder / "link_to_folder.jpg", "link to a folder"),
        Case("link to a good image", folder / "link_to_good.png", None),
        Case("good link target", good, None),
        Case("folder named like an image", folder / "folder_named_like.jpg", "is a folder", listed=False),
        Case("missing file", folder / "missing.jpg", "file not found", listed=False),
        Case("path with a NUL byte", str(folder / "nul\0.jpg"), "cannot read file", listed=False),
        Case("file name too long", str(folder / ("x" * 300 + ".jpg")), "cannot read file", listed=False),
    ]
    sock_path = folder / "socket.jpg"
    if len(str(sock_path)) < 100:  # AF_UNIX path limit
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(sock_path))
        cases.append(Case("socket", sock_path, "not a regular file"))
    if os.geteuid() != 0:  # root reads files whatever their mode
        locked = folder / "unreadable.jpg"
        locked.write_bytes(_jpeg(gradient()))
        locked.chmod(0)
        cases.append(Case("unreadable file", locked, "permission denied"))
    return cases


def _memory_cases() -> list[Case]:
    """Bytes, arrays, PIL images and objects of the wrong type."""
    jpeg = _jpeg(gradient(256, 192))
    lazy_truncated = Image.open(io.BytesIO(jpeg[: len(jpeg) // 2]))  # fails only when its pixels are read
    nan = np.full((8, 8, 3), np.nan, np.float32)
    big_endian = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(">u2")
    hsv = gradient().convert("HSV")
    return [
        Case("no bytes", b"", "0 bytes"),
        Case("junk bytes", b"\x00\x01junk" * 10, NOT_IMAGE),
        Case("truncated JPEG bytearray", bytearray(jpeg[: len(jpeg) // 2]), "truncated"),
        Case("zTXt bomb memoryview", memoryview(png_with_text()), "text metadata"),
        Case("lazy truncated PIL image", lazy_truncated, "truncated"),
        Case("array of NaN", nan, "NaN"),
        Case("array with infinity", np.full((8, 8), np.inf), "NaN or infinite"),
        Case("int64 array", np.zeros((8, 8, 3), np.int64), "dtype"),
        Case("bool array", np.ones((8, 8), bool), "dtype"),
        Case("object array", np.array([[None, 1], [2, 3]], dtype=object), "dtype"),
        Case("complex array", np.zeros((8, 8), np.complex64), "dtype"),
        Case("float16 array", np.zeros((8, 8), np.float16), "dtype"),
        Case("5-D array", np.zeros((2, 2, 2, 2, 3), np.uint8), "shape"),
        Case("0-D array", np.array(7, np.uint8), "shape"),
        Case("empty array", np.zeros((0, 0, 3), np.uint8), "empty array"),
        Case("7-channel array", np.zeros((5, 6, 7), np.uint8), "shape"),
        Case("channels-first array", np.zeros((3, 64, 64), np.uint8), "shape"),
        Case("None", None, "unsupported input type"),
        Case("an int", 42, "unsupported input type"),
        Case("a dict", {"path": "photo.jpg"}, "unsupported input type"),
        Case("a list", ["photo.jpg"], "unsupported input type"),
        Case("big-endian uint16 array", big_endian, None),
        Case("non-contiguous array", np.asarray(gradient())[:, ::-2], None),
        Case("RGBA array", np.asarray(gradient().convert("RGBA")), None),
        Case("HSV PIL image", hsv, None),
        Case("float PIL image with NaN", Image.fromarray(nan[..., 0], "F"), None),
    ]


def corpus(folder: Path) -> list[Case]:
    """The whole bad-input corpus: files written into ``folder`` (which holds nothing else), special
    paths, and in-memory inputs. Cases with ``problem=None`` are odd but valid and must load."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (data, problem) in _file_cases().items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, problem))
    for name, data in _valid_files().items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, None))
    return cases + _special_paths(folder) + _memory_cases()


# -- the fuzzer: seeded byte mutations of small valid images in every format Pillow writes here --------------------

#: seed name → (Pillow format, mode, file extension, save options)
FUZZ_SPECS: dict[str, tuple[str, str, str, dict]] = {
    "JPEG": ("JPEG", "RGB", "jpg", {}), "JPEG-progressive": ("JPEG", "RGB", "jpg", {"progressive": True}),
    "PNG": ("PNG", "RGBA", "png", {}), "PNG-16bit": ("PNG", "I;16", "png", {}), "GIF": ("GIF", "P", "gif", {}),
    "BMP": ("BMP", "RGB", "bmp", {}), "DIB": ("DIB", "RGB", "dib", {}),
    "TIFF": ("TIFF", "RGB", "tif", {"compression": "tiff_lzw"}),
    "TIFF-jpeg": ("TIFF", "RGB", "tif", {"compression": "jpeg"}),
    "WEBP": ("WEBP", "RGB", "webp", {"quality": 50}), "WEBP-lossless": ("WEBP", "RGBA", "webp", {"lossless": True}),
    "ICO": ("ICO", "RGBA", "ico", {}), "PPM": ("PPM", "RGB", "ppm", {}),
    "TGA": ("TGA", "RGB", "tga", {"compression": "tga_rle"}), "PCX": ("PCX", "RGB", "pcx", {}),
    "SGI": ("SGI", "RGB", "sgi", {}), "IM": ("IM", "RGB", "im", {}), "DDS": ("DDS", "RGBA", "dds", {}),
    "JPEG2000": ("JPEG2000", "RGB", "jp2", {}), "QOI": ("QOI", "RGBA", "qoi", {}),
    "AVIF": ("AVIF", "RGB", "avif", {"quality": 50}), "BLP": ("BLP", "P", "blp", {}), "MSP": ("MSP", "1", "msp", {}),
    "SPIDER": ("SPIDER", "F", "spi", {}), "XBM": ("XBM", "1", "xbm", {}), "MPO": ("MPO", "RGB", "mpo", {}),
    "EPS": ("EPS", "RGB", "eps", {}),
}
MUTATIONS = ("bit flips", "truncation", "chunk duplication", "header bytes", "length field", "zeroed span",
             "inserted bytes")


@dataclass
class Mutant:
    index: int
    seed_name: str
    mutation: str
    data: bytes

    @property
    def filename(self) -> str:
        return f"{self.index:05d}_{self.seed_name}_{self.mutation.replace(' ', '_')}.{FUZZ_SPECS[self.seed_name][2]}"


def fuzz_seeds() -> dict[str, bytes]:
    """A small valid image per format this Pillow can write (and read back: EPS needs Ghostscript)."""
    seeds = {}
    for name, (fmt, mode, _, options) in FUZZ_SPECS.items():
        if fmt == "EPS" and shutil.which("gs") is None:
            continue
        try:
            seeds[name] = _save(gradient(24, 16).convert(mode), fmt, **options)
        except (OSError, KeyError, ValueError):  # a codec this Pillow was built without
            continue
    return seeds


def _length_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the size and length fields of PNG, JPEG, RIFF and ISO-BMFF files (else the header)."""
    fields: list[tuple[int, int]] = []
    if data.startswith(b"\x89PNG"):
        pos = 8
        fields += [(16, 4), (20, 4)]  # IHDR width, height
        while pos + 8 <= len(data):
            fields.append((pos, 4))
            pos += 12 + struct.unpack(">I", data[pos:pos + 4])[0]
    elif data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            fields.append((pos + 2, 2))
            if data[pos + 1] == 0xDA:  # start of scan: entropy-coded data follows
                break
            pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    elif data.startswith(b"RIFF"):
        pos = 12
        fields.append((4, 4))
        while pos + 8 <= len(data):
            fields.append((pos + 4, 4))
            pos += 8 + (struct.unpack("<I", data[pos + 4:pos + 8])[0] + 1) // 2 * 2
    elif data[4:8] in (b"ftyp", b"jP  "):
        pos = 0
        while pos + 8 <= len(data):
            size = struct.unpack(">I", data[pos:pos + 4])[0]
            fields.append((pos, 4))
            fields += [(i - 4, 4) for i in range(pos + 8, min(len(data), pos + size) - 4) if data[i:i + 4].isalpha()]
            pos += max(size, 8)
    return fields or [(i, w) for w in (2, 4) for i in range(0, min(len(data) - w, 64), w)]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of ``data``: (its kind, the mutated bytes)."""
    kind = rng.choice(MUTATIONS)
    b, n = bytearray(data), len(data)
    if kind == "bit flips":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == "truncation":
        del b[rng.randrange(1, n):]
    elif kind == "chunk duplication":
        start = rng.randrange(n)
        b[start:start] = b[start:start + rng.randint(1, 256)] * rng.randint(1, 3)
    elif kind == "header bytes":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(n, 64))] = rng.randrange(256)
    elif kind == "length field":
        offset, width = rng.choice(_length_fields(data))
        top = (1 << (8 * width)) - 1
        old = int.from_bytes(b[offset:offset + width], "big")
        value = rng.choice([0, 1, top, top >> 1, rng.randrange(top), (old + 1) & top, old * 2 & top])
        b[offset:offset + width] = value.to_bytes(width, rng.choice(["big", "little"]))
    elif kind == "zeroed span":
        start = rng.randrange(n)
        b[start:start + rng.randint(1, 32)] = bytes(min(n - start, rng.randint(1, 32)))
    else:
        start = rng.randrange(n)
        b[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return kind, bytes(b)


def mutants(count: int, seed: int, seeds: dict[str, bytes] | None = None) -> list[Mutant]:
    """``count`` mutants spread evenly over the formats, reproducible from ``seed``."""
    seeds = seeds or fuzz_seeds()
    rng = random.Random(seed)
    names = sorted(seeds)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        mutation, data = mutate(seeds[name], rng)
        out.append(Mutant(i, name, mutation, data))
    return out
