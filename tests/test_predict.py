"""``structpose predict`` on a run folder with randomly initialised weights: which files go through, how the
outputs are written (atomically, with the usual permissions) and how images are read."""

import errno
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import StructuredNet
from structpose.predict import predict_images, read_crop
from structpose.train.config import load_config
from structpose.train.engine import WEIGHTS
from structpose.train.export import save_weights

RNG = np.random.default_rng(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `structpose reproduce` leaves it, as far as predict reads it: config and weights."""
    folder = tmp_path_factory.mktemp("run")
    cfg = load_config("tiny")
    cfg.to_yaml(folder / "config.yaml")
    ae = PoseAutoencoder(cfg.ae, scale_mm=1.0)
    net = StructuredNet(PaperCNN(cfg.cnn, ae.latent_dim), ae.decoder(), PoseNormalizer())
    save_weights(net, folder / "finetune" / WEIGHTS)
    return folder


def crop_file(folder, name: str, height: int = 40, width: int = 30) -> str:
    path = folder / name
    Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 60-byte PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_skipped_and_the_other_crops_kept(run_dir, tmp_path):
    good = [crop_file(tmp_path, "a.png"), crop_file(tmp_path, "b.png")]
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    out, problems = predict_images(run_dir, [good[0], tmp_path / "bomb.png", good[1]], tmp_path / "out")
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'bomb.png'}: ")
    got = np.load(out / "poses.npz")
    assert got["poses"].shape == (2, 17, 3) and list(got["names"]) == [str(p) for p in good]


def test_every_bad_file_is_reported_by_path_with_its_reason_and_the_rest_go_through(run_dir, tmp_path):
    good = [crop_file(tmp_path, "a.png"), crop_file(tmp_path, "b.jpg")]
    bad = {
        "empty.png": b"",
        "text.png": b"not an image",
        "truncated.png": (tmp_path / "a.png").read_bytes()[:-40],
        "bomb.png": bomb_png(),
        "huge.png": bomb_png(9000, 9000),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    files = [good[0], *(tmp_path / name for name in bad), tmp_path / "missing.png", tmp_path, good[1]]
    out, problems = predict_images(run_dir, files, tmp_path / "out")
    assert len(problems) == len(files) - 2
    for path, line in zip(files[1:-1], problems, strict=True):
        assert line.startswith(f"{path}: ") and len(line) > len(f"{path}: ") + 10, line
    assert "empty" in problems[0] and "81,000,000" in problems[4]
    assert list(np.load(out / "poses.npz")["names"]) == [str(p) for p in good]
    with pytest.raises(ValueError, match="no readable image.*empty.png"):
        predict_images(run_dir, files[1:-1], tmp_path / "none")


def test_read_crop_applies_exif_orientation(tmp_path):
    stored = RNG.integers(0, 256, (20, 36, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    Image.fromarray(np.ascontiguousarray(np.rot90(stored, k=-1))).save(tmp_path / "upright.png")
    np.testing.assert_array_equal(read_crop(tmp_path / "phone.png", 32), read_crop(tmp_path / "upright.png", 32))


def test_read_crop_scales_16_bit_and_float_images(tmp_path):
    values = np.tile(np.linspace(0, 65535, 48).round().astype(np.uint16), (40, 1))
    eight = np.rint(values / 257).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    Image.fromarray(values.astype(np.float32) / 65535).save(tmp_path / "float.tiff")
    Image.fromarray(eight).save(tmp_path / "grey8.png")
    expected = read_crop(tmp_path / "grey8.png", 32)
    assert expected.max() > 200
    np.testing.assert_array_equal(read_crop(tmp_path / "grey16.png", 32), expected)
    np.testing.assert_array_equal(read_crop(tmp_path / "float.tiff", 32), expected)


def folder_state(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_leaves_no_temp_file_and_the_previous_poses_untouched(run_dir, tmp_path, monkeypatch):
    crops = [crop_file(tmp_path, "a.png")]
    out, _ = predict_images(run_dir, crops, tmp_path / "out")
    before = folder_state(out)
    assert set(before) == {"poses.npz", "poses.png"}

    def full_disk(file, *args, **kwargs):
        (file.write if hasattr(file, "write") else open(file, "wb").write)(b"PK\3\4")  # a partial write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="no space left") as err:
        predict_images(run_dir, [crop_file(tmp_path, "b.png")], out)
    assert err.value.errno == errno.ENOSPC and str(out / "poses.npz") in str(err.value)
    assert folder_state(out) == before


def test_a_full_disk_while_saving_the_figure_leaves_no_temp_file(run_dir, tmp_path, monkeypatch):
    import matplotlib.figure

    crops = [crop_file(tmp_path, "a.png")]
    out, _ = predict_images(run_dir, crops, tmp_path / "out")
    png = (out / "poses.png").read_bytes()

    def full_disk(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    with pytest.raises(OSError, match="no space left") as err:
        predict_images(run_dir, crops, out)
    assert str(out / "poses.png") in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["poses.npz", "poses.png"]
    assert (out / "poses.png").read_bytes() == png


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_have_the_usual_permissions(run_dir, tmp_path, umask):
    crops = [crop_file(tmp_path, "a.png")]
    old = os.umask(umask)
    try:
        out, _ = predict_images(run_dir, crops, tmp_path / "out")
    finally:
        os.umask(old)
    for name in ("poses.npz", "poses.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
