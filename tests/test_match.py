"""Two images in, correspondences out: flow files, pictures, skcorr.match and `skcorr match`."""

import struct

import numpy as np
import pytest

from skcorr.flow import read_flo, read_flow, write_flo, write_flow


# -- .flo and .npy files ----------------------------------------------------------------------
def _independent_read(path):
    """A .flo reader written from the format's description, sharing no code with skcorr."""
    data = path.read_bytes()
    magic, width, height = struct.unpack("<fii", data[:12])
    assert magic == 202021.25 and data[:4] == b"PIEH"
    assert len(data) == 12 + 4 * 2 * width * height
    return np.frombuffer(data[12:], dtype="<f4").reshape(height, width, 2)


def _independent_write(path, field):
    height, width = field.shape[:2]
    values = [float(v) for v in field.ravel()]  # u, v interleaved, row-major
    path.write_bytes(struct.pack("<fii", 202021.25, width, height)
                     + struct.pack(f"<{len(values)}f", *values))


@pytest.fixture
def field():
    rng = np.random.default_rng(0)
    field = rng.normal(scale=20, size=(5, 7, 2)).astype(np.float32)
    field[0, 0] = (1e-30, -3.5e7)  # extreme values survive too
    return field


def test_flo_written_by_skcorr_reads_back_exactly_elsewhere(tmp_path, field):
    path = tmp_path / "f.flo"
    write_flo(path, field)
    assert path.stat().st_size == 12 + 5 * 7 * 2 * 4
    back = _independent_read(path)
    np.testing.assert_array_equal(back, field)  # bit for bit
    # u of pixel (row 1, col 2) is value 2 * (1 * 7 + 2) of the body
    assert struct.unpack_from("<f", path.read_bytes(), 12 + 4 * 2 * 9)[0] == field[1, 2, 0]
    np.testing.assert_array_equal(read_flo(path), field)
    assert read_flo(path).dtype == np.float32


def test_flo_written_elsewhere_reads_back_exactly(tmp_path, field):
    path = tmp_path / "other.flo"
    _independent_write(path, field)
    np.testing.assert_array_equal(read_flo(path), field)
    np.testing.assert_array_equal(read_flow(path), field)


def test_npy_and_overwrite(tmp_path, field):
    path = tmp_path / "f.npy"
    write_flow(path, field.astype(np.float64))
    assert np.load(path).dtype == np.float32
    np.testing.assert_array_equal(read_flow(path), field)
    with pytest.raises(FileExistsError, match="already exists.*overwrite=True"):
        write_flow(path, np.zeros((2, 2, 2)))
    np.testing.assert_array_equal(np.load(path), field)  # untouched
    write_flow(path, np.zeros((2, 2, 2)), overwrite=True)
    assert np.load(path).shape == (2, 2, 2)
    with pytest.raises(FileExistsError):
        write_flo(tmp_path / "f.npy", field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]  # no temporary left


def test_flow_files_reject_bad_input(tmp_path, field):
    with pytest.raises(ValueError, match=r"shape \(H, W, 2\).*got shape \(5, 7\)"):
        write_flo(tmp_path / "a.flo", field[..., 0])
    with pytest.raises(ValueError, match="must end in .flo or .npy"):
        write_flow(tmp_path / "a.png", field)
    assert not any(tmp_path.iterdir())
    path = tmp_path / "good.flo"
    write_flo(path, field)
    data = path.read_bytes()
    (tmp_path / "short.flo").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="damaged .flo file.*7x5 pixels.*truncated"):
        read_flo(tmp_path / "short.flo")
    (tmp_path / "head.flo").write_bytes(data[:6])
    with pytest.raises(ValueError, match="too short"):
        read_flo(tmp_path / "head.flo")
    (tmp_path / "magic.flo").write_bytes(b"PIEX" + data[4:])
    with pytest.raises(ValueError, match="not a .flo file.*magic number 202021.25"):
        read_flo(tmp_path / "magic.flo")


def test_write_flo_of_a_flow_writes_its_pixel_field(tmp_path):
    from skcorr.features import FeatureMap
    from skcorr.flow import align

    rng = np.random.default_rng(1)
    target = rng.normal(size=(6, 7, 4))
    maps = [FeatureMap(features=f, xs=4.0 + 8 * np.arange(f.shape[1]),
                       ys=4.0 + 8 * np.arange(f.shape[0]), rf_size=16,
                       image_shape=(8 * f.shape[0], 8 * f.shape[1]))
            for f in (target[1:5, 2:6], target)]
    flow = align(*maps, lam=0.01)
    write_flo(tmp_path / "f.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "f.flo"), flow.pixel_flow())
    np.testing.assert_array_equal(read_flo(tmp_path / "f.flo")[..., 0], 16.0)
