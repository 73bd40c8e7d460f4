"""Performance benchmark for ngdformer: ratios measured side by side in one run.

    python benchmarks/run.py            # about a minute; prints a Markdown table
    python benchmarks/run.py --as-is    # keep the caller's BLAS threads and malloc settings

Every ratio times its two sides interleaved (A, B, A, B, ...) after a warm-up, so both
see the same machine load, and divides the medians (time.perf_counter). Timings are not
tests: nothing here fails, the table says whether each goal holds on this machine.

By default the script re-launches itself with one BLAS thread (OPENBLAS/OMP/MKL_NUM_THREADS=1)
and with glibc's malloc told to keep freed memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_):
on a shared two-core machine, competing BLAS threads and the page faults of freshly mapped
arrays otherwise swing single timings by several times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

PINNED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def _relaunch_pinned() -> None:
    """Re-run this script with :data:`PINNED` in the environment (once; before NumPy is imported)."""
    if os.environ.get("NGDFORMER_BENCH_PINNED") == "1":
        return
    env = dict(os.environ, NGDFORMER_BENCH_PINNED="1", **PINNED)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


def side_by_side(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds of each callable, the calls interleaved round by round after ``warmup`` rounds."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_bytes(f) -> int:
    """Peak traced memory (bytes) while ``f()`` runs, NumPy arrays included."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Table:
    """Rows of (measurement, value, goal, verdict), printed as Markdown."""

    def __init__(self, quiet: bool):
        self.rows, self.quiet, self.start = [], quiet, time.perf_counter()

    def add(self, what: str, value: str, goal: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("yes" if met else "**no**")
        self.rows.append((what, value, goal, verdict))
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:5.0f} s] {what}: {value}", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| measurement | value | goal | met |", "|---|---|---|---|"]
        return "\n".join(lines + [f"| {' | '.join(row)} |" for row in self.rows])


def bench_query_vs_ngd(nf, np, table: Table, repeats: int) -> None:
    """Query-column layer against NGD on the same tasks (B = 1024, n = 64, d = 16)."""
    B, n, d, eta, L = 1024, 64, 16, 0.5, 20
    rng = np.random.default_rng(0)
    X, y, _ = nf.sample_tasks(rng, B, n, d)
    w0 = rng.standard_normal((B, d))
    Z, (W, V) = nf.embed(X, y, w0), nf.ngd_weights(d, eta)
    err = nf.rel_error(nf.read_weights(nf.fast.looped_forward(Z, W, V, n, L, query_only=True)), nf.ngd(w0, X, y, eta, L)[-1])
    t = side_by_side({"loop": lambda: nf.fast.looped_forward(Z, W, V, n, L, query_only=True),
                      "ngd": lambda: nf.ngd(w0, X, y, eta, L),
                      "layer": lambda: nf.fast.attention_forward(Z, W, V, n, query_only=True),
                      "step": lambda: nf.ngd_step(w0, X, y, eta)}, repeats)
    ratio = t["loop"] / t["ngd"]
    table.add(f"query layer per loop in `looped_forward(..., query_only=True)` / NGD step per step in `ngd` "
              f"(B={B}, n={n}, d={d}, {L} loops; {1e3 * t['loop'] / L:.2f} vs {1e3 * t['ngd'] / L:.2f} ms; "
              f"rel. difference {err:.0e})", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)
    ratio = t["layer"] / t["step"]
    table.add(f"one public call `attention_forward(..., query_only=True)` / one `ngd_step` call "
              f"({1e3 * t['layer']:.2f} vs {1e3 * t['step']:.2f} ms; the call validates and copies all of Z, "
              f"twice the size of X)", f"{ratio:.2f}x", "(1.5x)", ratio <= 1.5)


def bench_full_vs_reference(nf, np, table: Table, repeats: int) -> None:
    """Optimised full forward + backward against the straightforward reference (B = 256, n = 64, d = 16)."""
    B, n, d = 256, 64, 16
    D, N = 2 * d, n + 1
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((B, D, N))
    W, V = rng.standard_normal((D, D)) / D, rng.standard_normal((D, D)) / np.sqrt(D)  # dense, scores O(1)
    G = rng.standard_normal((B, D, N))

    def fast():
        return nf.fast.attention_backward(G, nf.fast.attention_forward(Z, W, V, n)[1])

    def reference():
        return nf.attention_backward(G, nf.attention_forward(Z, W, V, n)[1])

    out, cache = nf.fast.attention_forward(Z, W, V, n)
    K, T, A, U = Z[..., :n], cache.T, cache.A, cache.U
    Kt, At = np.swapaxes(K, -1, -2), np.swapaxes(A, -1, -2)

    def products_only():  # the twelve matrix products both versions must do, nothing else
        W @ Z, Kt @ T, K @ A, V @ U  # forward: T, S, U, V U
        (G @ np.swapaxes(U, -1, -2)).sum(0), V.T @ G, G @ At, Kt @ G  # backward: dV, dU, dK, dA
        T @ At, K @ A, (T @ np.swapaxes(Z, -1, -2)).sum(0), W.T @ T  # dK, dT, dW, dQ (stand-in operands)

    err = max(nf.rel_error(a, b) for a, b in zip(fast(), reference()))
    t = side_by_side({"fast": fast, "reference": reference, "products": products_only}, repeats)
    ratio = t["fast"] / t["reference"]
    table.add(f"optimised full forward + backward / reference (B={B}, n={n}, d={d}, float64, dense weights; "
              f"{1e3 * t['fast']:.1f} vs {1e3 * t['reference']:.1f} ms; rel. difference {err:.0e})",
              f"{ratio:.2f}x", "<= 0.5x", ratio <= 0.5)
    table.add("the same twelve matrix products alone / reference (a floor no reordering removes)",
              f"{t['products'] / t['reference']:.2f}x")


def bench_query_scaling(nf, np, table: Table, repeats: int, B: int, goal: bool) -> None:
    """Time of the query path as n grows from 64 to 4096 (d = 16): log-log slopes, NGD's beside them."""
    d, eta, L = 16, 0.5, 10
    ns = [64 * 2**k for k in range(7)]  # 64 .. 4096
    W, V = nf.ngd_weights(d, eta)
    times = {"loop": [], "call": [], "ngd": []}
    for n in ns:
        rng = np.random.default_rng(n)
        X, y, _ = nf.sample_tasks(rng, B, n, d)
        w0 = rng.standard_normal((B, d))
        Z = nf.embed(X, y, w0)
        t = side_by_side({"loop": lambda: nf.fast.looped_forward(Z, W, V, n, L, query_only=True),
                          "call": lambda: nf.fast.attention_forward(Z, W, V, n, query_only=True),
                          "ngd": lambda: nf.ngd(w0, X, y, eta, L)}, max(repeats // 2, 5))
        for key in times:
            times[key].append(t[key] / (1 if key == "call" else L))
    slope = {key: float(np.polyfit(np.log(ns), np.log(t), 1)[0]) for key, t in times.items()}
    size = f"B={B}, d={d}; Z is {B * 2 * d * (ns[-1] + 1) * 8 / 2**20:.0f} MiB at n={ns[-1]}"
    for key, name in (("loop", "per loop in `looped_forward(..., query_only=True)`"),
                      ("call", "one `attention_forward(..., query_only=True)` call")):
        table.add(f"log-log slope of time vs n = 64..4096 ({size}), {name}: "
                  f"{1e3 * times[key][0]:.3f} -> {1e3 * times[key][-1]:.2f} ms; NGD step on the same tasks: "
                  f"slope {slope['ngd']:.2f}", f"{slope[key]:.2f}", "<= 1.1" if goal else "(1.1)", slope[key] <= 1.1)


def bench_training(nf, np, table: Table) -> None:
    """Seconds to train one layer to relative distance 1e-6 from (W*, V*) (constant lr, sigma0 = 1)."""
    n, d, eta, batch, lr, steps = 40, 10, 0.5, 256, 1e-2, 1000
    what = f"training one layer to 1e-6 relative distance (Adam lr {lr}, B={batch}, n={n}, d={d}, eta={eta}, zero start)"
    from ngdformer.training import train_one_step_layer

    _, _, hist = train_one_step_layer(np.random.default_rng(0), n=n, d=d, eta=eta, iterations=steps, batch=batch, lr=lr,
                                      sigma0=1.0, schedule="constant", quiet=True)
    reached = np.flatnonzero(hist["dist"] < 1e-6)
    if reached.size == 0:
        table.add(what, f"not reached in {steps} steps (distance {hist['dist'][-1]:.1e}, {hist['seconds']:.1f} s)")
        return
    t = int(reached[0]) + 1
    table.add(f"{what}: {t} steps at {1e3 * hist['seconds'] / steps:.1f} ms per step",
              f"{hist['seconds'] * t / steps:.1f} s")


def bench_memory(nf, np, table: Table) -> None:
    """Peak traced memory of looped evaluations without gradients, for 10, 100 and 1000 loops."""
    d, eta, loops = 16, 0.1, (10, 100, 1000)
    for label, B, n, kwargs in (("query path", 256, 64, {"query_only": True}), ("full model", 16, 32, {})):
        rng = np.random.default_rng(2)
        X, y, _ = nf.sample_tasks(rng, B, n, d)
        Z = nf.embed(X, y, rng.standard_normal((B, d)))
        W, V = nf.ngd_weights(d, eta)
        peaks = [peak_bytes(lambda: nf.fast.looped_forward(Z, W, V, n, L, **kwargs)) for L in loops]
        growth = peaks[-1] / peaks[0]
        table.add(f"peak memory of a looped evaluation, {label} (B={B}, n={n}, d={d}; Z is {Z.nbytes / 2**20:.2f} MiB), "
                  + ", ".join(f"{L} loops {p / 2**20:.2f} MiB" for L, p in zip(loops, peaks)),
                  f"{growth:.2f}x from 10 to 1000 loops", "independent of loops", growth <= 1.05)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--as-is", action="store_true", help="keep the caller's BLAS threads and malloc settings")
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds per ratio (default 21)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if not args.as_is:
        _relaunch_pinned()
    import numpy as np

    import ngdformer as nf

    pinned = "as is" if args.as_is else "pinned: 1 BLAS thread, malloc keeps freed memory"
    print(f"ngdformer {nf.__version__}, NumPy {np.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, environment {pinned}; medians of {args.repeats} interleaved rounds\n")
    table = Table(args.quiet)
    bench_query_vs_ngd(nf, np, table, args.repeats)
    bench_full_vs_reference(nf, np, table, args.repeats)
    bench_query_scaling(nf, np, table, args.repeats, B=16, goal=True)  # every size inside a 32 MiB L3
    bench_query_scaling(nf, np, table, args.repeats, B=64, goal=False)  # leaves it from n = 2048
    bench_training(nf, np, table)
    bench_memory(nf, np, table)
    print(table.markdown())


if __name__ == "__main__":
    main()
