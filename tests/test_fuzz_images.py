"""Fuzzing the image reader and the array converter: whatever the bytes or the array, the answer is an
(H, W, 3) uint8 array or the documented error (FormatError for bytes, InputError for arrays), fast.

Derandomised with no example database, so every run tries the same examples: never flaky.
"""

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from structpose.errors import FormatError, InputError
from structpose.images import as_rgb8, decode_image

FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
#: a fuzzed header may declare a large picture: keep each example small (the limit itself is tested too)
LIMIT = 1 << 16
#: one example taking this long would be a hang (each takes milliseconds)
SLOW_S = 5.0


def _encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(array) if array.dtype != np.uint8 or array.ndim == 3 else Image.fromarray(array, "L")
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        _encode(rgb, "PNG"),
        _encode(rgb, "PNG", exif=exif),
        _encode(rgb[..., 0], "PNG"),
        _encode(grey16, "PNG"),
        _encode(np.dstack([rgb, rgb[..., :1]]), "PNG"),
        _encode(rgb, "JPEG", quality=80),
        _encode(rgb, "JPEG", exif=exif),
        _encode(rgb, "TIFF"),
        _encode(grey16, "TIFF"),
        _encode(rng.random((4, 5), dtype=np.float32), "TIFF"),
        _encode(rgb, "BMP"),
        _encode(rgb, "GIF"),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    """A seed file, cut short and/or with a few bytes changed."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


def _check_rgb8(got: np.ndarray) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8
    assert got.ndim == 3 and got.shape[2] == 3 and got.shape[0] > 0 and got.shape[1] > 0


def test_the_seed_files_decode():
    for data in SEEDS:
        _check_rgb8(decode_image(data, "seed"))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damage done on purpose
@FUZZ
@given(mutated())
def test_damaged_files_decode_or_raise_format_error(data):
    start = time.perf_counter()
    try:
        got = decode_image(data, "fuzzed.img", max_pixels=LIMIT)
    except FormatError as err:
        assert str(err).startswith("fuzzed.img: ")
    else:
        _check_rgb8(got)
        assert got.shape[0] * got.shape[1] <= LIMIT
    assert time.perf_counter() - start < SLOW_S


DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.bool_, np.complex64]
)


@st.composite
def arrays(draw) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    if dtype.kind == "f":  # mostly in [0, 1], sometimes anything: NaN, inf, huge, negative
        elements = st.one_of(st.floats(0, 1, width=8 * dtype.itemsize), st.floats(width=8 * dtype.itemsize))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


@FUZZ
@given(arrays())
def test_as_rgb8_converts_or_raises_input_error(array):
    try:
        got = as_rgb8(array)
    except InputError as err:
        assert isinstance(err, ValueError) and "expected" in str(err)
        return
    _check_rgb8(got)
    assert got.shape[:2] == array.shape[:2]
    assert array.dtype.kind in "uf" and array.ndim in (2, 3)
    if array.dtype.kind == "f":
        assert np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1
    if array.ndim == 2 or array.shape[2] in (1, 2):  # greyscale stays grey
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        np.testing.assert_array_equal(got, array)
