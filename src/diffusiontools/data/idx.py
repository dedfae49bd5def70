"""Read the IDX format that the original MNIST files use (LeCun et al., "THE MNIST DATABASE").

An IDX file is a 4-byte big-endian magic number (0x0000 08 nd: unsigned bytes, ``nd`` dimensions),
``nd`` big-endian uint32 sizes, then the payload. MNIST ships them gzip-compressed; the same reader
takes the uncompressed form so that hand-unpacked copies work too.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dims (N, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dim (N,)
_NDIM = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (``.gz`` or raw) into a uint8 array: (N, rows, cols) or (N,).

    Every way a file can be broken (bad gzip stream, unknown magic, a payload shorter or longer
    than its header promises) raises ``UserError`` naming the file, because a half-read MNIST
    would silently train on the wrong data. The array is writable so ``torch.from_numpy`` can share
    its memory without a copy.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:  # gzip's own words would not help
            raise UserError(
                f"{path} is truncated or not valid gzip: expected a gzip-compressed MNIST IDX "
                "file; download it again"
            ) from e
    data = bytearray(raw)

    if len(data) < 4:
        raise UserError(f"{path} is truncated: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _NDIM:
        raise UserError(
            f"{path} is not an MNIST IDX file: magic number 0x{magic:08x}, expected "
            f"0x{IMAGES_MAGIC:08x} (images) or 0x{LABELS_MAGIC:08x} (labels)"
        )
    header_len = 4 + 4 * _NDIM[magic]
    if len(data) < header_len:
        raise UserError(
            f"{path} is truncated: expected a {header_len}-byte header, got {len(data)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=_NDIM[magic], offset=4))
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise UserError(f"{path} is truncated: expected {expected} bytes, got {len(data)}")
    if len(data) > expected:
        raise UserError(
            f"{path} is corrupt: its header {dims} implies {expected} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)
