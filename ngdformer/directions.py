r"""The angle between two directions, accurate at every angle (chapters 01-02).

On separable data GD and NGD iterates grow without bound, so only their direction
matters; chapters 01-02 track the angle between an iterate and the max-margin
direction :math:`w_{mm}`. ``arccos`` of the cosine loses half the digits near 0
(cosine 1 - 1e-17 rounds to 1, so angles below ~1e-8 read as 0); Kahan's
half-angle form keeps full relative accuracy.
"""

from __future__ import annotations

import numpy as np

from .checks import as_float


def _unit_rows(name: str, a) -> np.ndarray:
    """Rows of ``a`` (..., d) scaled to unit length without overflow or underflow; refuses a zero row.

    The norm is taken of ``a / max|a|`` (entries at most 1), so rows of 1e200 or 1e-200 are
    directions like any other.
    """
    scale = np.max(np.abs(a), axis=-1, keepdims=True)  # (..., 1)
    if np.any(scale == 0):
        raise ValueError(f"{name} has a zero row: the zero vector has no direction")
    a = a / scale
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _check_pair(u, v) -> tuple[np.ndarray, np.ndarray]:
    """``u`` (..., d) and ``v`` (..., d), finite, d >= 1, leading dimensions that broadcast."""
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    if u.shape[-1] != v.shape[-1] or u.shape[-1] == 0:
        raise ValueError(f"u has shape {u.shape} and v has shape {v.shape}: last dimensions must match and be >= 1")
    try:
        np.broadcast_shapes(u.shape[:-1], v.shape[:-1])
    except ValueError:
        raise ValueError(f"u has shape {u.shape} and v has shape {v.shape}: their leading dimensions do not "
                         "broadcast") from None
    return u, v


def angle(u, v) -> np.ndarray:
    r"""Angle in radians between ``u`` and ``v``, in [0, pi]; stable near 0 and pi (chapter 01).

    .. math:: \theta(u, v) = 2\,\mathrm{atan2}\big(\|\hat u - \hat v\|,\ \|\hat u + \hat v\|\big),
              \qquad \hat u = u / \|u\|

    Parameters
    ----------
    u : ndarray of shape (..., d), d >= 1, finite, non-zero rows (of any magnitude)
    v : ndarray of shape (..., d), finite, non-zero rows; leading dimensions broadcast with ``u``
        (e.g. a trajectory (T, B, d) against w_mm (B, d))

    Returns
    -------
    theta : ndarray of shape (...), the broadcast leading dimensions

    Raises
    ------
    ValueError
        if ``u`` or ``v`` has a zero row (no direction), the last dimensions differ or the leading ones
        do not broadcast.
    """
    u, v = _check_pair(u, v)
    hu, hv = _unit_rows("u", u), _unit_rows("v", v)
    return 2.0 * np.arctan2(np.linalg.norm(hu - hv, axis=-1), np.linalg.norm(hu + hv, axis=-1))
