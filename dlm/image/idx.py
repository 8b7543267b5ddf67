"""Readers for the two on-disk formats of the staged image data: IDX (MNIST, Fashion-MNIST) and MATLAB v5 (.mat).

IDX (LeCun et al.): a big-endian header ``0x00 0x00 <dtype code> <ndim>`` followed by ndim uint32 sizes and the
row-major array; the files may be gzipped. Type code 0x08 = uint8 (the only one MNIST uses; the others are read too).
MATLAB v5 needs scipy (imported lazily): binarized MNIST keeps a uint8 (N, 784) array in variable X.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from dlm.registry import ConfigError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
               0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` read transparently), shape = the header's sizes, native byte order."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"IDX file {path} is missing; set DLM_DATA_DIR to the folder holding the dataset")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an IDX file (magic {data[:4].hex()}); give an MNIST-style *-ubyte file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = data[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise ConfigError(f"{path} is truncated: header says {shape} but holds {len(body)} bytes; re-fetch the file")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_mat(path: str | Path, variable: str = "X") -> np.ndarray:
    """Variable `variable` of a MATLAB v5 file (scipy.io.loadmat)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ConfigError("reading .mat files needs scipy: pip install 'dlm[image]' (or pip install scipy)") from None
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f".mat file {path} is missing; set DLM_DATA_DIR to the folder holding the dataset")
    contents = loadmat(path)
    if variable not in contents:
        names = ", ".join(k for k in contents if not k.startswith("__"))
        raise ConfigError(f"{path} has no variable '{variable}' (has: {names})")
    return np.asarray(contents[variable])
