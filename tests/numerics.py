"""Error measures for the tests: errors against the size of the computation, not of its result."""

import numpy as np


def scaled_error(a, b, scale) -> float:
    r"""``max|a - b| / scale``; NaN anywhere in ``a`` or ``b`` gives ``inf`` (never a pass).

    Use it where the result can pass near zero although the numbers that made it did not
    (an iterate crossing the origin): ``scale`` is the size of those numbers.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def loop_scale(Z, V, layers: int) -> float:
    r"""A bound on every entry a looped layer touches: :math:`\max|Z|\,(1 + L\,D \max|V|)`.

    Each layer adds :math:`V K a` with :math:`a` on the simplex, so it moves an entry by at
    most :math:`D \max|V| \max|K|`.
    """
    D = np.shape(V)[-1]
    return float(np.max(np.abs(Z)) * (1.0 + layers * D * np.max(np.abs(V))))
