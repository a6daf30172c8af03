"""structpose.images: every image file or array becomes (H, W, 3) uint8 by one documented set of rules."""

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from structpose import images
from structpose.errors import FormatError, InputError
from structpose.images import as_rgb8, decode_image, read_image

RNG = np.random.default_rng(0)

#: EXIF Orientation -> how the stored pixels (rows, columns, channels) are shown, written out from the EXIF
#: specification rather than taken from Pillow
SHOWN = {
    2: lambda s: s[:, ::-1],  # mirrored left-right
    3: lambda s: s[::-1, ::-1],  # rotated 180
    4: lambda s: s[::-1, :],  # mirrored top-bottom
    5: lambda s: s.transpose(1, 0, 2),  # mirrored, then rotated 90 counter-clockwise: the transpose
    6: lambda s: np.rot90(s, k=-1),  # rotated 90 clockwise
    7: lambda s: s[::-1, ::-1].transpose(1, 0, 2),  # mirrored, then rotated 90 clockwise: the transverse
    8: lambda s: np.rot90(s, k=1),  # rotated 90 counter-clockwise
}


def png_bytes(width: int, height: int, raw: bytes, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG written by hand (so that its header can declare anything): one IDAT holding ``raw``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def save(tmp_path, name: str, image: Image.Image, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def asymmetric_rgb(height: int = 6, width: int = 10) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


# 1. EXIF orientation


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_exif_orientation_of_a_png_is_applied(tmp_path, orientation):
    stored = asymmetric_rgb()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, "phone.png", Image.fromarray(stored), exif=exif)
    got = read_image(path)
    np.testing.assert_array_equal(got, SHOWN[orientation](stored))


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_of_a_jpeg_is_applied(tmp_path, orientation):
    stored = np.kron(asymmetric_rgb(3, 5), np.ones((8, 8, 1), dtype=np.uint8))  # 24 x 40, flat 8x8 blocks
    plain = read_image(save(tmp_path, "plain.jpg", Image.fromarray(stored), quality=95))
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = read_image(save(tmp_path, "phone.jpg", Image.fromarray(stored), quality=95, exif=exif))
    assert tagged.shape == (40, 24, 3)
    np.testing.assert_array_equal(tagged, SHOWN[orientation](plain))  # same pixel data, shown turned


# 2. 16-bit images


def gradient16(height: int = 4, width: int = 300) -> np.ndarray:
    return np.tile(np.linspace(0, 65535, width).round().astype(np.uint16), (height, 1))


def expected8(values16: np.ndarray) -> np.ndarray:
    grey = np.rint(values16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B"), ("TIFF", "I"), ("PNG", "I;16B")]
)
def test_16_bit_greyscale_is_scaled_to_8_bits_not_clipped(tmp_path, fmt, mode):
    values = gradient16()
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32))  # 32-bit integers holding 16-bit data
    else:
        image = Image.frombytes(mode, values.shape[::-1], values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    path = save(tmp_path, f"grey16.{fmt.lower()}", image, format=fmt)
    got = read_image(path)
    np.testing.assert_array_equal(got, expected8(values))
    assert (got == 255).mean() < 0.01  # only the top of the gradient is white


def test_16_bit_greyscale_png_written_by_hand_is_scaled(tmp_path):
    values = gradient16(3, 257)
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    path = tmp_path / "grey16.png"
    path.write_bytes(png_bytes(257, 3, raw, bit_depth=16, colour_type=0))
    np.testing.assert_array_equal(read_image(path), expected8(values))


def test_32_bit_integers_beyond_16_bits_are_a_format_error(tmp_path):
    path = save(tmp_path, "int32.tiff", Image.fromarray(np.array([[0, 70000]], dtype=np.int32)))
    with pytest.raises(FormatError, match=r"\[0, 65535\]") as err:
        read_image(path)
    assert err.value.path == path and "70000" in str(err.value)


# 3. float images


def test_float_image_in_0_1_is_scaled_by_255(tmp_path):
    values = np.linspace(0.0, 1.0, 5 * 41, dtype=np.float32).reshape(5, 41)
    path = save(tmp_path, "float.tiff", Image.fromarray(values))
    got = read_image(path)
    np.testing.assert_array_equal(got[..., 0], np.floor(values.astype(np.float64) * 255 + 0.5))
    assert (got[..., 0] == got[..., 2]).all() and got.max() == 255


@pytest.mark.parametrize(
    "values", [[0.0, 255.0], [-0.5, 0.5], [0.0, np.nan], [np.inf, 0.5]], ids=["0-255", "negative", "nan", "inf"]
)
def test_float_image_outside_0_1_or_not_finite_is_a_format_error(tmp_path, values):
    path = save(tmp_path, "float.tiff", Image.fromarray(np.array([values], dtype=np.float32)))
    with pytest.raises(FormatError, match=r"expected finite values in \[0, 1\]") as err:
        read_image(path)
    assert err.value.path == path
    assert ("non-finite" in str(err.value)) == (not np.isfinite(values).all())


# 4. decompression bombs and the pixel limit


@pytest.mark.parametrize(
    ("width", "height", "says"),
    [(100_000, 100_000, "decompression bomb"), (9000, 9000, "81,000,000 pixels")],
    ids=["bomb", "over-max-pixels"],
)
def test_header_declaring_a_huge_size_is_refused_before_decoding(tmp_path, width, height, says):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(width, height, b"\x00" * 64))  # a few bytes that declare a huge picture
    with pytest.raises(FormatError, match=says) as err:
        read_image(path)
    assert err.value.path == path


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    path = save(tmp_path, "big.png", Image.fromarray(asymmetric_rgb(20, 30)))
    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real_load(self))
    monkeypatch.setattr(images, "MAX_PIXELS", 599)
    with pytest.raises(FormatError, match=r"600 pixels, more than .*MAX_PIXELS = 599") as err:
        read_image(path)
    assert err.value.path == path and not loads
    monkeypatch.setattr(images, "MAX_PIXELS", 600)
    assert read_image(path).shape == (20, 30, 3) and loads


# 5. explicit conversions of every mode


def test_greyscale_palette_and_bilevel_become_three_equal_channels(tmp_path):
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    got = read_image(save(tmp_path, "grey.png", Image.fromarray(grey)))
    np.testing.assert_array_equal(got, np.repeat(grey[..., None], 3, axis=-1))
    bilevel = Image.fromarray(grey > 127).convert("1")
    got = read_image(save(tmp_path, "bilevel.png", bilevel))
    np.testing.assert_array_equal(got[..., 1], np.where(grey > 127, 255, 0))
    palette = Image.fromarray(asymmetric_rgb()).quantize(colors=8)
    lut = np.array(palette.getpalette()[: 3 * 8], dtype=np.uint8).reshape(8, 3)
    got = read_image(save(tmp_path, "palette.png", palette))
    np.testing.assert_array_equal(got, lut[np.asarray(palette)])


def composite_on_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.rint(colour.astype(np.float64) * alpha[..., None] / 255).astype(np.uint8)


def test_alpha_is_composited_on_black(tmp_path):
    rgba = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    got = read_image(save(tmp_path, "rgba.png", Image.fromarray(rgba)))
    np.testing.assert_array_equal(got, composite_on_black(rgba[..., :3], rgba[..., 3]))
    assert (got[0, 0] == 0).all() and (got[0, 1] == rgba[0, 1, :3]).all()
    la = rgba[..., [0, 3]]
    got = read_image(save(tmp_path, "la.png", Image.fromarray(la, mode="LA")))
    np.testing.assert_array_equal(got, np.repeat(composite_on_black(la[..., :1], la[..., 1]), 3, axis=-1))


def test_palette_transparency_is_composited_on_black(tmp_path):
    grey = np.array([[10, 200], [200, 10]], dtype=np.uint8)
    palette = Image.fromarray(grey).convert("P")
    path = save(tmp_path, "trns.png", palette, transparency=int(np.asarray(palette)[0, 0]))
    got = read_image(path)
    np.testing.assert_array_equal(got[..., 0], [[0, 200], [200, 0]])


def test_cmyk_is_converted_to_rgb(tmp_path):
    cmyk = np.array([[[255, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 0], [0, 255, 255, 0]]], dtype=np.uint8)
    got = read_image(save(tmp_path, "cmyk.jpg", Image.fromarray(cmyk, mode="CMYK"), quality=100))
    expected = np.array([[[0, 255, 255], [0, 0, 0], [255, 255, 255], [255, 0, 0]]])
    assert np.abs(got.astype(int) - expected).max() <= 8  # JPEG, so within a few levels


def test_as_rgb8_follows_the_same_rules_as_files():
    grey8 = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb8(grey8), np.repeat(grey8[..., None], 3, axis=-1))
    np.testing.assert_array_equal(as_rgb8(grey8[..., None]), as_rgb8(grey8))
    rgb = asymmetric_rgb()
    assert as_rgb8(rgb) is not rgb
    np.testing.assert_array_equal(as_rgb8(rgb), rgb)
    rgba = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb8(rgba), composite_on_black(rgba[..., :3], rgba[..., 3]))
    values = gradient16()
    np.testing.assert_array_equal(as_rgb8(values), expected8(values))
    np.testing.assert_array_equal(as_rgb8(values.astype(">u2")), expected8(values))
    unit = np.linspace(0, 1, 24).reshape(4, 6)
    np.testing.assert_array_equal(as_rgb8(unit)[..., 1], np.floor(unit * 255 + 0.5))
    np.testing.assert_array_equal(as_rgb8(np.array([[0.5 / 255, 1.5 / 255]])), [[[1] * 3, [2] * 3]])  # halves up
    np.testing.assert_array_equal(as_rgb8(unit.astype(np.float16)), as_rgb8(unit.astype(np.float16).astype(float)))
    la = np.stack([unit, unit[::-1]], axis=-1)
    np.testing.assert_array_equal(as_rgb8(la)[..., 2], np.floor(unit * unit[::-1] * 255 + 0.5))
    rgba16 = RNG.integers(0, 65536, (4, 6, 4), dtype=np.uint16)
    want = np.floor(rgba16[..., :3] / 65535 * (rgba16[..., 3:] / 65535) * 255 + 0.5)
    np.testing.assert_array_equal(as_rgb8(rgba16), want)


@pytest.mark.parametrize(
    "array",
    [np.zeros((4, 6, 5), np.uint8), np.zeros(6, np.uint8), np.zeros((2, 4, 6, 3), np.uint8), np.zeros((0, 6, 3))],
    ids=["5-channels", "1-d", "4-d", "empty"],
)
def test_as_rgb8_refuses_other_shapes_saying_what_it_expects(array):
    with pytest.raises(InputError, match=r"expected an \(H, W\), \(H, W, 1\), \(H, W, 3\) or \(H, W, 4\)") as err:
        as_rgb8(array)
    assert str(array.shape) in str(err.value) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("dtype", [np.int32, np.int8, bool, np.complex64, object])
def test_as_rgb8_refuses_other_dtypes_saying_what_it_expects(dtype):
    with pytest.raises(InputError, match="uint8, uint16 or float") as err:
        as_rgb8(np.zeros((4, 6, 3), dtype=dtype))
    assert np.dtype(dtype).name in str(err.value)


def test_as_rgb8_refuses_non_arrays_and_floats_outside_0_1():
    with pytest.raises(InputError, match="numpy array"):
        as_rgb8([[0, 1], [2, 3]])
    with pytest.raises(InputError, match=r"from 0 to 255.*expected finite values in \[0, 1\]"):
        as_rgb8(np.array([[0.0, 255.0]]))
    with pytest.raises(InputError, match="non-finite"):
        as_rgb8(np.array([[0.0, np.nan]], dtype=np.float32))


# 7. every undecodable file is a FormatError naming it


def good_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(asymmetric_rgb(16, 16)).save(buf, format="PNG")
    return buf.getvalue()


def good_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(asymmetric_rgb(16, 16)).save(buf, format="JPEG")
    return buf.getvalue()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


BAD_FILES = {
    "empty": lambda: b"",
    "text": lambda: b"not an image",
    "png-signature-only": lambda: good_png()[:8],
    "truncated-png": lambda: good_png()[:-30],
    "png-header-crc": lambda: flip(good_png(), 20),
    "png-zero-width": lambda: png_bytes(0, 4, b"\x00" * 4),
    "truncated-jpeg": lambda: good_jpeg()[: len(good_jpeg()) // 2],
    "jpeg-header-only": lambda: good_jpeg()[:200],
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_undecodable_files_are_format_errors_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.img"
    path.write_bytes(BAD_FILES[kind]())
    with pytest.raises(FormatError) as err:
        read_image(path)
    assert err.value.path == path and str(err.value).startswith(f"{path}: ")
    assert "empty" in str(err.value) if kind == "empty" else True
    with pytest.raises(FormatError, match="^upload.png: "):  # the same rules for bytes in memory
        decode_image(path.read_bytes(), "upload.png")


def test_a_missing_file_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        read_image(tmp_path)


def test_only_the_supported_formats_are_decoded(tmp_path):
    path = save(tmp_path, "pose.ico", Image.fromarray(asymmetric_rgb(16, 16)))
    with pytest.raises(FormatError, match="PNG, JPEG"):
        read_image(path)
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "GIF"):
        path = save(tmp_path, "pose.img", Image.fromarray(asymmetric_rgb(6, 10)), format=fmt)
        assert read_image(path).shape == (6, 10, 3) and read_image(path).dtype == np.uint8
