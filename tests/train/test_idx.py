"""The IDX reader against files written by the test (plain and gzip)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from neuralcollapse.train.idx import read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_returns_what_write_idx_wrote(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4)
    array = (array % 256 if dtype == np.uint8 else array).astype(dtype)
    path = tmp_path / f"x-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_read_idx_parses_a_hand_written_mnist_style_header(tmp_path):
    # magic 0x00000801 (uint8, 1 dim), length 3, then the labels 7, 2, 1
    path = tmp_path / "labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


def test_read_idx_big_endian_multibyte_values(tmp_path):
    path = tmp_path / "values-idx1"
    # int32 (0x0C), one dimension of size 2, values 1 and 258 big-endian
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 2]))
    np.testing.assert_array_equal(read_idx(path), [1, 258])


def test_read_idx_rejects_a_file_that_is_not_idx(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_an_unknown_element_type(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="unknown IDX element type 0x07"):
        read_idx(path)


def test_read_idx_reports_a_truncated_payload(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    write_idx(path, np.zeros((4, 2, 2), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_read_idx_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nope-idx1-ubyte")
