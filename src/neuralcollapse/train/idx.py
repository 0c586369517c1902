"""Reader for the IDX file format of MNIST-style datasets (plain or gzip-compressed).

An IDX file is a 4-byte magic number ``0x00 0x00 T D`` (T: element type code, D: number
of dimensions), then D big-endian uint32 sizes, then the elements in row-major order,
big-endian. MNIST, Fashion-MNIST and KMNIST ship their images (D = 3) and labels (D = 1)
this way (LeCun et al., "The MNIST database of handwritten digits").
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# IDX element type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file into a numpy array of its declared shape.

    Parameters
    ----------
    path : the file; a name ending in ``.gz`` is decompressed with gzip.

    Returns
    -------
    numpy array of shape (n_0, ..., n_{D-1}) in native byte order.

    Raises
    ------
    FileNotFoundError : the file does not exist.
    ValueError : the header is not IDX, or the payload size disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (its first two bytes must be zero)")
    type_code, num_dims = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise ValueError(
            f"{path}: unknown IDX element type 0x{type_code:02x}; "
            f"expected one of {sorted(hex(c) for c in IDX_DTYPES)}"
        )
    header_end = 4 + 4 * num_dims
    if len(raw) < header_end:
        raise ValueError(f"{path}: truncated IDX header ({num_dims} dimensions declared)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=num_dims, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise ValueError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header_end} bytes; is it truncated?"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``).

    The inverse of :func:`read_idx`; used to make small IDX files (tests, subsets).
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise ValueError(
            f"cannot write dtype {array.dtype} as IDX; use uint8, int8, int16, int32, "
            "float32 or float64"
        )
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + payload)
