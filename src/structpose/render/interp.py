"""Separable resampling of small grids onto pixel grids: interpolation matrices and a thread-safe product.

A grid ``G`` (m, m) of samples evenly spaced across the centres of ``n`` pixels is resampled as
``W @ G @ W.T`` with an interpolation matrix ``W`` (n, m). The products run in row blocks small enough
that OpenBLAS computes each on the calling thread: one large product wakes its thread pool, which costs
milliseconds per call on a busy machine and nothing here needs it (the renderer runs one process per core).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Largest multiply-add count of one BLAS call (OpenBLAS threads a GEMM from 4 * 65536 upwards).
_SINGLE_THREAD_MACS = 65536


@lru_cache(maxsize=32)
def linear_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes) float32 weights of linear interpolation from ``nodes`` evenly spaced samples spanning
    the centres of ``n`` pixels onto those centres (rows sum to 1)."""
    pos = np.arange(n) * (nodes - 1) / max(n - 1, 1)
    lo = np.minimum(np.floor(pos).astype(int), nodes - 2)
    w = pos - lo
    W = np.zeros((n, nodes), dtype=np.float32)
    W[np.arange(n), lo] = 1 - w
    W[np.arange(n), lo + 1] = w
    return W


@lru_cache(maxsize=128)
def cubic_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes + 2) float32 Catmull-Rom weights from ``nodes`` evenly spaced samples spanning the
    centres of ``n`` pixels, plus one more sample beyond each end, onto those centres (rows sum to 1)."""
    pos = np.arange(n) * (nodes - 1) / max(n - 1, 1)
    lo = np.minimum(np.floor(pos).astype(int), nodes - 2)
    t = pos - lo
    t2, t3 = t * t, t * t * t
    w = 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], axis=1)
    W = np.zeros((n, nodes + 2), dtype=np.float32)
    W[np.arange(n)[:, None], lo[:, None] + np.arange(4)] = w  # samples lo - 1 .. lo + 2: columns lo .. lo + 3
    return W


def _blocked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a (n, k), b (k, p), as a stack of row blocks of at most ``_SINGLE_THREAD_MACS`` each."""
    n, k = a.shape
    limit = max(1, _SINGLE_THREAD_MACS // (k * b.shape[1]))
    block = max(d for d in range(1, min(limit, n) + 1) if n % d == 0)
    return (a.reshape(n // block, block, k) @ b).reshape(n, b.shape[1])


def resample(grid: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``W @ grid @ W.T``: grid (m, m) float32 -> (n, n) float32 for ``W`` (n, m)."""
    return _blocked_matmul(_blocked_matmul(W, grid), np.ascontiguousarray(W.T))
