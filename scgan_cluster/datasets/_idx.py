"""The IDX file format of MNIST and Fashion-MNIST, gzipped or not."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["read_idx"]

# third byte of the magic number -> element type (big-endian on disk)
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed or not.

    The header is checked: two zero bytes, a known type code (``0x08`` unsigned byte, ``0x09``
    signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number
    of dimensions, one big-endian int32 per dimension, then exactly as many values as the
    dimensions say. Compression is recognised by the content, not by the file name.

    Parameters
    ----------
    path
        The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    The array, with the shape of the header and the type in native byte order.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path} looks gzip-compressed but cannot be decompressed: {e}") from e
    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file: only {len(raw)} bytes.")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: its magic number starts with {raw[0]:#04x} {raw[1]:#04x}, "
            "not two zero bytes."
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(
            f"{path}: unknown IDX type code {code:#04x} (known: "
            f"{', '.join(f'{c:#04x}' for c in _IDX_TYPES)})."
        )
    if ndim == 0:
        raise ValueError(f"{path}: the IDX header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its IDX header ({ndim} dimensions).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: the header says {shape} values of type {dtype.name} ({expected} bytes), but "
            f"the file holds {len(raw) - header} bytes of data ("
            f"{'truncated' if len(raw) - header < expected else 'trailing bytes'})."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
