"""Input validation shared by every public function.

Bad input gets a ``ValueError`` that names the bad value; nothing here ever
"fixes" an input silently. Each helper returns float64 (or the caller's float
dtype) arrays so the numerical code below it can assume clean input.
"""

from __future__ import annotations

import numpy as np


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string for a number, a float for an integer, ...).

    It is a ``TypeError``, and also a ``ValueError`` so that code catching the package's
    ValueErrors for bad input (the command line, the course's checkers) catches it too,
    as NumPy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``.
    """


def as_float(name: str, a, *, ndim_min: int = 0) -> np.ndarray:
    """Return ``a`` as a floating array (float32 kept, anything else float64), finite.

    Raises ``ValueError`` naming ``name`` if ``a`` has NaN/inf entries, too few
    dimensions, or is not numeric.
    """
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"{name} must be real numeric, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise ValueError(f"{name} contains a non-finite value ({bad}); all entries must be finite")
    return arr


def as_labels(y, *, name: str = "y") -> np.ndarray:
    """Return labels as a float array, checking every entry is -1 or +1."""
    y = as_float(name, y, ndim_min=1)
    ok = (y == 1.0) | (y == -1.0)
    if not np.all(ok):
        bad = y[~ok].ravel()[0].item()  # a Python float: the message reads "found 0.0", not "np.float64(0.0)"
        raise ValueError(f"labels {name} must be in {{-1, +1}}, found {bad!r}")
    return y


def check_context(w, X, y, *, w_name: str = "w"):
    """Validate a batch of contexts and weight vectors; return them as arrays.

    Shapes: ``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n), ``n >= 1``; the
    leading (batch) dimensions of ``w`` and ``X`` must broadcast. The result dtype is float64 unless
    every input is float32.
    """
    X = as_float("X", X, ndim_min=2)
    y = as_labels(y)
    if X.shape[-2] == 0:
        raise ValueError(f"empty context: X has shape {X.shape} with n = 0 examples")
    if y.shape != X.shape[:-1]:
        raise ValueError(f"y has shape {y.shape} but X has shape {X.shape}; expected y.shape == {X.shape[:-1]}")
    if w is not None:
        w = as_float(w_name, w, ndim_min=1)
        try:  # leading dimensions broadcast, e.g. a trajectory (T, B, d) against X (B, n, d)
            np.broadcast_shapes(w.shape[:-1], X.shape[:-2])
            ok = w.shape[-1] == X.shape[-1]
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{w_name} has shape {w.shape} but X has shape {X.shape}; expected {w_name}.shape == {X.shape[:-2] + X.shape[-1:]}"
                " (or leading dimensions that broadcast)"
            )
        dtype = np.result_type(w, X, y)
        w = w.astype(dtype, copy=False)
    else:
        dtype = np.result_type(X, y)
    return w, X.astype(dtype, copy=False), y.astype(dtype, copy=False)


#: Largest number of layer applications (depth) or optimizer iterations any public function
#: accepts: at the sizes of the course one application takes about a millisecond, so a
#: million is already a quarter of an hour; beyond it a typo (1e12) would run for days.
MAX_DEPTH = 10**6

#: Largest number of float64 entries a public function will allocate for one array
#: (2**28 entries = 2 GiB); larger requests are refused instead of exhausting memory.
MAX_ELEMENTS = 2**28


def _short(value) -> str:
    """``repr`` of a bad value, cut to 80 characters for the error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False,
                   maximum=None) -> float:
    """Check a scalar hyper-parameter is finite and positive (or >= 0), and at most ``maximum``.

    A value of the wrong type (a string, a bool, a float where an integer is needed) is a
    ``TypeError``; a number out of range (NaN, inf, negative, zero, above ``maximum``, or an
    integer too large for a float) is a ``ValueError``. Both messages name ``name`` and the value.
    """
    if integer:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InputTypeError(f"{name} must be an integer, got {_short(value)}")
    elif not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be a real number, got {_short(value)}")
    if integer and int(value) > np.iinfo(np.int64).max:  # e.g. 10**30: no array can hold it
        raise ValueError(f"{name} = {_short(value)} is too large: the limit is {maximum or np.iinfo(np.int64).max}")
    try:
        finite = bool(np.isfinite(float(value)))
    except OverflowError:  # an int beyond the float range, e.g. eta = 10**400
        if maximum is not None and value > 0:
            raise ValueError(f"{name} = {_short(value)} is too large: the limit is {maximum}") from None
        finite = False
    bound = ">= 0" if allow_zero else "> 0"
    if not finite or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {bound}, got {_short(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} = {_short(value)} is too large: the limit is {maximum}")
    return value


def check_flag(name: str, value) -> bool:
    """Check a yes/no option is a real bool (``True``/``False`` or ``np.bool_``), not ``"no"`` or 0."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


def check_generator(rng, name: str = "rng") -> np.random.Generator:
    """Check ``rng`` is an ``np.random.Generator`` (not ``None``, a seed or the ``np.random`` module)."""
    if not isinstance(rng, np.random.Generator):
        raise InputTypeError(
            f"{name} must be a numpy.random.Generator, for example np.random.default_rng(0), got {_short(rng)}"
        )
    return rng


def check_size(name: str, shape) -> tuple:
    """Refuse an array shape with more than ``MAX_ELEMENTS`` entries before allocating it."""
    total = 1
    for k in shape:
        total *= int(k)
    if total > MAX_ELEMENTS:
        raise ValueError(
            f"{name} would have shape {tuple(int(k) for k in shape)} = {total} entries; "
            f"the limit is {MAX_ELEMENTS} (2 GiB of float64)"
        )
    return tuple(shape)


def check_tokens(Z, n_context: int) -> np.ndarray:
    """Validate a token matrix ``Z`` of shape (..., D, N) and the context size ``n_context``."""
    Z = as_float("Z", Z, ndim_min=2)
    D, N = Z.shape[-2:]
    if D == 0 or D % 2:
        raise ValueError(f"Z must have an even, positive number of rows D = 2d, got D = {D}")
    if isinstance(n_context, bool) or not isinstance(n_context, (int, np.integer)):
        raise InputTypeError(f"n_context must be an integer, got {n_context!r}")
    if not 1 <= n_context <= N - 1:
        raise ValueError(f"n_context = {n_context} is out of range: Z has N = {N} columns, need 1 <= n_context <= N - 1")
    return Z


def check_weights(W, V, D: int):
    """Validate layer weights: both (D, D), finite."""
    W = as_float("W", W, ndim_min=2)
    V = as_float("V", V, ndim_min=2)
    for name, M in (("W", W), ("V", V)):
        if M.shape != (D, D):
            raise ValueError(f"{name} has shape {M.shape}, expected ({D}, {D}) to match Z with D = {D} rows")
    return W, V


def check_layer(Z, W, V, n_context: int):
    """Validate the inputs of one attention layer; return ``Z, W, V`` as float arrays.

    ``Z`` takes the dtype NumPy's promotion gives all three (float32 only if all are float32),
    so a float32 ``Z`` with float64 weights gives a float64 layer, as the matrix products would.
    """
    Z = check_tokens(Z, n_context)
    W, V = check_weights(W, V, Z.shape[-2])
    return Z.astype(np.result_type(Z, W, V), copy=False), W, V


def check_cache_gradient(dout, Z) -> np.ndarray:
    """Validate the upstream gradient of a layer whose input was ``Z``: same shape, float."""
    dout = as_float("dout", dout)
    if dout.shape != Z.shape:
        raise ValueError(f"dout has shape {dout.shape}, expected {Z.shape} (the shape of the layer's output)")
    return dout.astype(np.result_type(dout, Z), copy=False)


def check_depth(depth, name: str = "depth") -> int:
    """Validate a number of layer applications: an integer with 0 <= depth <= ``MAX_DEPTH``."""
    return int(check_positive(name, depth, integer=True, allow_zero=True, maximum=MAX_DEPTH))
