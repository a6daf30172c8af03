"""Images: the one place structpose decodes image files and converts image arrays.

Every image, whether a file (:func:`read_image`), bytes in memory (:func:`decode_image`) or an array
(:func:`as_rgb8`), becomes an (H, W, 3) uint8 RGB array by the same rules:

- **orientation**: a file's EXIF Orientation tag is applied, so the array is the picture as it is shown (a
  phone photo stored sideways comes out upright);
- **8 bits** are kept as they are; a 1-bit (black and white) image becomes 0 and 255;
- **16 bits** (greyscale PNG or TIFF: Pillow modes ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``, and ``I``
  holding values in [0, 65535]; ``uint16`` arrays) are scaled: ``round(value * 255 / 65535)``. 32-bit
  integer images with values outside [0, 65535] are refused;
- **floats** (Pillow mode ``F``, e.g. a float TIFF; float arrays) must be finite and in [0, 1]; they are
  scaled by 255 and rounded (halves up). Anything else (0-255 floats, negative values, NaN, infinity) is
  refused, since no scale can be guessed;
- **greyscale** and **palette** images are repeated into / looked up as the three channels; CMYK, YCbCr,
  HSV and LAB go through Pillow's conversions to RGB (an embedded ICC profile is not applied);
- **alpha** (greyscale + alpha, RGBA, the transparent colour of a palette or of an 8-bit PNG) is composited
  on **black** (``colour * alpha``), the colour that pads a crop to a square, so a cut-out person looks as a
  padded one;
- **size**: a file whose header declares more than :data:`MAX_PIXELS` pixels is refused before anything
  is decoded, as is one Pillow deems a decompression bomb;
- **formats**: only those of :data:`FORMATS` are opened (Pillow's other plugins are not tried); of a file
  of several frames (GIF, multi-page TIFF) the first frame is read.

A file that cannot be read this way is a :class:`~structpose.errors.FormatError` naming it and saying why;
whatever Pillow raises while decoding is turned into one. An unusable array is an
:class:`~structpose.errors.InputError` (a ``ValueError``) saying what was expected.

Known limit: Pillow itself reduces 16-bit-per-channel colour (RGB, RGBA) PNGs to 8 bits by keeping the high
byte (``value // 256``: at most one level below the rounding above).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from structpose.errors import FormatError, InputError

#: the most pixels (width x height, from the file's header) a file may declare: 8192 x 8192
MAX_PIXELS = 8192 * 8192
#: the Pillow formats that are opened (others are refused without trying their decoders)
FORMATS = ("PNG", "JPEG", "MPO", "TIFF", "BMP", "GIF", "WEBP", "PPM")

#: what Pillow's decoders raise on damaged data (the bomb error and broken-chunk SyntaxError included)
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
    Image.DecompressionBombError,
)
_EXPECTED_SHAPE = (
    "expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array (grey, RGB, RGBA; or (H, W, 2): grey + alpha)"
)
_DTYPES = "uint8, uint16 or float (floats in [0, 1])"
_WHAT_TO_DO = "re-save it as an 8- or 16-bit PNG or JPEG and try again"


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB, by the rules of this module (EXIF orientation applied, 16-bit and float
    scaled, alpha composited on black).

    Args:
        path: an image file in one of :data:`FORMATS`.
        max_pixels: the most pixels its header may declare; default :data:`MAX_PIXELS`.

    Returns:
        (H, W, 3) uint8 array, H x W as the picture is shown.

    Raises:
        FormatError: the file is empty, truncated, corrupt, of another format, too large, or holds values
            that cannot be scaled to 8 bits; the message names it and says why.
        OSError: the file cannot be opened at all (missing, a folder, no permission); the message names it.
    """
    with open(path, "rb") as fp:
        return _decode(fp, path, max_pixels)


def decode_image(data: bytes, name: str | Path = "<bytes>", max_pixels: int | None = None) -> np.ndarray:
    """:func:`read_image` for the bytes of an image file held in memory.

    Args:
        data: the file's bytes.
        name: how error messages name the image.
        max_pixels: the most pixels its header may declare; default :data:`MAX_PIXELS`.

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        FormatError: as :func:`read_image`, naming ``name``.
    """
    return _decode(io.BytesIO(data), name, max_pixels)


def as_rgb8(array: np.ndarray) -> np.ndarray:
    """Convert an image array to RGB uint8 by the rules of this module.

    Args:
        array: (H, W) or (H, W, 1) greyscale, (H, W, 2) greyscale + alpha, (H, W, 3) RGB or (H, W, 4) RGBA;
            uint8 (0-255), uint16 (0-65535, scaled by 255 / 65535) or float (finite, in [0, 1], scaled by
            255); any byte order.

    Returns:
        (H, W, 3) uint8, a new array (alpha composited on black).

    Raises:
        InputError: (a ``ValueError``) another shape or dtype, an empty image, or floats outside [0, 1];
            the message says what was expected and what was found.
    """
    if not isinstance(array, np.ndarray):
        raise InputError(f"{_EXPECTED_SHAPE} of {_DTYPES}; got a {type(array).__name__}, not a numpy array")
    channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 2, 3, 4))
    if not channels_ok or 0 in array.shape:
        raise InputError(f"{_EXPECTED_SHAPE} with H, W > 0; got shape {array.shape}")
    if not _is_supported_dtype(array.dtype):
        raise InputError(
            f"expected dtype {_DTYPES}; got {array.dtype.name}: convert it first (e.g. array.astype(np.uint8))"
        )
    return _rgb8(array if array.ndim == 3 else array[..., None], InputError, None)


def _decode(fp: BinaryIO, name: str | Path, max_pixels: int | None) -> np.ndarray:
    """An open binary file -> (H, W, 3) uint8; every failure a FormatError naming ``name``."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(fp, formats=_registered_formats()) as im:
            _check_size(im.size, name, limit)
            im.load()
            array = _pil_array(ImageOps.exif_transpose(im), name)
    except FormatError:
        raise
    except _DECODE_ERRORS as err:
        raise FormatError(_decode_failure(fp, err), name) from err
    return _rgb8(array, FormatError, name)


def _registered_formats() -> list[str]:
    """Those of :data:`FORMATS` that this Pillow reads (it raises KeyError on a plugin not yet loaded)."""
    Image.init()  # loads every plugin once; returns at once afterwards
    return [fmt for fmt in FORMATS if fmt in Image.OPEN]


def _decode_failure(fp: BinaryIO, err: Exception) -> str:
    """Why a file could not be decoded, in words, with what to do."""
    if _is_empty(fp):
        return "the file is empty; pass an image file (PNG, JPEG, ...) instead"
    if isinstance(err, Image.DecompressionBombError):
        return f"Pillow refuses it as a possible decompression bomb ({err}); downscale the image first"
    if isinstance(err, UnidentifiedImageError):
        return f"not an image of a supported format ({', '.join(FORMATS)}), or its header is corrupt; {_WHAT_TO_DO}"
    return f"the image is truncated or corrupt ({err.__class__.__name__}: {err}); {_WHAT_TO_DO}"


def _is_empty(fp: BinaryIO) -> bool:
    try:
        return fp.seek(0, io.SEEK_END) == 0
    except (OSError, ValueError):  # not seekable, or closed
        return False


def _check_size(size: tuple[int, int], name: str | Path, limit: int) -> None:
    """Refuse, from the header's (width, height), an empty picture or one of more than ``limit`` pixels."""
    width, height = size
    if width <= 0 or height <= 0:
        raise FormatError(f"its header declares an empty {width} x {height} picture; {_WHAT_TO_DO}", name)
    if width * height > limit:
        raise FormatError(
            f"its header declares {width} x {height} = {width * height:,} pixels, more than "
            f"structpose.images.MAX_PIXELS = {limit:,}; downscale or crop the image first",
            name,
        )


def _pil_array(im: Image.Image, name: str | Path) -> np.ndarray:
    """A loaded Pillow image -> (H, W, C) array, C in 1-4 (grey, grey + alpha, RGB, RGBA) of uint8, uint16
    (16-bit modes) or float32 (mode F): the input of :func:`_rgb8`."""
    if im.mode in ("L", "RGB", "P") and "transparency" in im.info:
        im = im.convert("RGBA")
    elif im.mode in ("1", "P", "CMYK", "YCbCr", "HSV", "LAB", "RGBX"):
        im = im.convert("L" if im.mode == "1" else "RGB")
    if im.mode.startswith("I;16"):
        array = np.asarray(im).astype(np.uint16)
    elif im.mode == "I":
        array = _int32_as_16_bit(np.asarray(im), name)
    elif im.mode in ("F", "L", "LA", "RGB", "RGBA"):
        array = np.asarray(im)
    else:
        raise FormatError(
            f"holds pixels of Pillow mode {im.mode!r}, which structpose does not read; {_WHAT_TO_DO}", name
        )
    return array if array.ndim == 3 else array[..., None]


def _int32_as_16_bit(array: np.ndarray, name: str | Path) -> np.ndarray:
    """32-bit integer pixels (Pillow mode I) -> uint16, refused unless all are in [0, 65535]."""
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 65535:
        raise FormatError(
            f"holds 32-bit integers from {low} to {high}; expected 16-bit values in [0, 65535]; "
            "save it as an 8- or 16-bit image",
            name,
        )
    return array.astype(np.uint16)


def _is_supported_dtype(dtype: np.dtype) -> bool:
    return (dtype.kind == "u" and dtype.itemsize in (1, 2)) or dtype.kind == "f"


def _rgb8(array: np.ndarray, error: type[FormatError] | type[InputError], name: str | Path | None) -> np.ndarray:
    """(H, W, C) array, C in 1-4, of uint8 / uint16 / float -> (H, W, 3) uint8; alpha composited on black.

    uint8 (with or without alpha) and uint16 without alpha take exact integer arithmetic (each result the
    nearest integer); the rest is computed in float64, halves rounded up. ``error`` (raised with ``name``)
    is what unscalable values are: FormatError for files, InputError for arrays.
    """
    has_alpha = array.shape[2] in (2, 4)
    colour, alpha = (array[..., :-1], array[..., -1:]) if has_alpha else (array, None)
    if array.dtype == np.uint8:
        out = colour.copy() if alpha is None else (colour.astype(np.uint16) * alpha + 127) // 255
    elif array.dtype.kind == "u" and alpha is None:
        out = (colour.astype(np.uint32) + 128) // 257  # round(v * 255 / 65535): v / 257 is never a half
    else:
        unit = _unit_range(colour, error, name)
        if alpha is not None:
            unit = unit * _unit_range(alpha, error, name)
        unit *= 255  # in place: unit is a float64 copy, and a large image's copies cost memory
        unit += 0.5
        out = np.floor(unit, out=unit)
    out = out.astype(np.uint8)
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def _unit_range(array: np.ndarray, error: type[FormatError] | type[InputError], name: str | Path | None) -> np.ndarray:
    """uint8 / uint16 / float values -> float64 in [0, 1]; floats must already be finite and in [0, 1]."""
    if array.dtype.kind == "u":
        return array / (255.0 if array.dtype.itemsize == 1 else 65535.0)
    finite = np.isfinite(array)
    if not finite.all():
        found = f"{int(array.size - finite.sum())} non-finite values (NaN or infinity)"
    elif array.min() < 0 or array.max() > 1:
        found = f"float values from {float(array.min()):g} to {float(array.max()):g}"
    else:
        return array.astype(np.float64)
    raise error(f"holds {found}; expected finite values in [0, 1] (scaled by 255): rescale them first", name)
