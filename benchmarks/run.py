"""Performance benchmark for ngdformer: ratios measured side by side in one run.

    python benchmarks/run.py            # about two minutes on a quiet machine; prints a Markdown table
    python benchmarks/run.py --as-is    # keep the caller's BLAS threads and malloc settings
    python benchmarks/run.py --no-torch # skip the comparisons with PyTorch even if it is installed

Every ratio times its sides interleaved (A, B, A, B, ...) after a warm-up, so all see the
same machine load, and divides the medians (time.perf_counter). Timings are not tests:
nothing here fails, the table says whether each goal holds on this machine.

The fast kernels run on one thread and, where a row says so, on two
(``ngdformer.fast.set_num_threads``); the BLAS stays at one thread except in the large
GEMM that gives the lower bound. PyTorch is never a dependency of the package: when it
imports, its CPU autograd runs the same layer and the same training loops for comparison
(``torch.set_num_threads`` 1 and 2), otherwise those rows say it was skipped.

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
    """Query-column layer against NGD on the same tasks (B = 1024, n = 64, d = 16), 1 and 2 threads."""
    B, n, d, eta, L = 1024, 64, 16, 0.5, 20
    rng = np.random.default_rng(0)
    X, y, _ = nf.sample_tasks(rng, B, n, d)
    w0 = rng.standard_normal((B, d))
    Z, (W, V) = nf.embed(X, y, w0), nf.ngd_weights(d, eta)
    err = nf.rel_error(nf.read_weights(nf.fast.looped_forward(Z, W, V, n, L, query_only=True)),
                       nf.ngd(w0, X, y, eta, L)[-1])

    def loop():
        return nf.fast.looped_forward(Z, W, V, n, L, query_only=True)

    def layer():
        return nf.fast.attention_forward(Z, W, V, n, query_only=True)

    t = side_by_side({"loop 1": _threads(nf, 1, loop), "loop 2": _threads(nf, 2, loop),
                      "ngd": lambda: nf.ngd(w0, X, y, eta, L),
                      "layer 1": _threads(nf, 1, layer), "layer 2": _threads(nf, 2, layer),
                      "step": lambda: nf.ngd_step(w0, X, y, eta), "read": lambda: np.add.reduce(Z, axis=None)}, repeats)
    nf.fast.set_num_threads(None)
    for k in (1, 2):
        ratio = t[f"loop {k}"] / t["ngd"]
        table.add(f"query layer per loop in `looped_forward(..., query_only=True)`, {k} thread{'s' * (k > 1)} / NGD "
                  f"step per step in `ngd` (B={B}, n={n}, d={d}, {L} loops; {1e3 * t[f'loop {k}'] / L:.2f} vs "
                  f"{1e3 * t['ngd'] / L:.2f} ms; rel. difference {err:.0e})", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)
    for k in (1, 2):
        ratio = t[f"layer {k}"] / t["step"]
        table.add(f"one public call `attention_forward(..., query_only=True)`, {k} thread{'s' * (k > 1)} / one "
                  f"`ngd_step` call ({1e3 * t[f'layer {k}']:.2f} vs {1e3 * t['step']:.2f} ms; the call checks and "
                  f"copies all of Z, twice the size of X)", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)
        ratio = t[f"layer {k}"] / t["read"]
        table.add(f"the same call, {k} thread{'s' * (k > 1)} / reading Z once (`np.add.reduce`, "
                  f"{Z.nbytes / 2**20:.0f} MiB, {1e3 * t['read']:.2f} ms)", f"{ratio:.2f}x", "<= 3x", ratio <= 3.0)


def _threads(nf, k: int, f):
    """``f`` run with the fast kernels on ``k`` threads."""
    def run():
        nf.fast.set_num_threads(k)
        return f()
    return run


def _torch_threads(torch, k: int, f):
    """``f`` run with PyTorch on ``k`` intra-op threads."""
    def run():
        torch.set_num_threads(k)
        return f()
    return run


def _gemm(np, threadpoolctl, size: int, threads: int):
    """A large square GEMM on ``threads`` BLAS threads: the rate the machine reaches on matrix products."""
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    C = np.empty((size, size))

    def run():
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            np.matmul(A, B, out=C)
    return run


def _torch_layer(torch, Z, W, V, n: int):
    """The full layer in PyTorch, the textbook's lines: out = Z + V K softmax(K^T W Z)."""
    K = Z[..., :n]
    A = torch.softmax(K.transpose(-1, -2) @ (W @ Z), dim=-2)
    return Z + V @ (K @ A)


def bench_full_layer(nf, np, table: Table, repeats: int, torch) -> None:
    """The fast full forward + backward (B = 256, n = 64, d = 16) against the textbook, PyTorch and a GEMM bound."""
    import threadpoolctl

    B, n, d = 256, 64, 16
    D, N = 2 * d, n + 1
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((B, D, N))
    W, V = rng.standard_normal((D, D)) / D, rng.standard_normal((D, D)) / np.sqrt(D)  # dense, scores O(1)
    G = rng.standard_normal((B, D, N))
    flops = B * 2 * N * D * (6 * D + 6 * n)  # the twelve products: six (D x D) @ (D x N), six with n

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

    size = 768
    sides = {"fast 1": _threads(nf, 1, fast), "fast 2": _threads(nf, 2, fast), "reference": _threads(nf, 1, reference),
             "products": products_only, "gemm 1": _gemm(np, threadpoolctl, size, 1),
             "gemm 2": _gemm(np, threadpoolctl, size, 2)}
    if torch is not None:
        Zt, Wt, Vt, Gt = (torch.tensor(x, requires_grad=True) for x in (Z, W, V, G))

        def torch_step():
            for x in (Zt, Wt, Vt):
                x.grad = None
            _torch_layer(torch, Zt, Wt, Vt, n).backward(Gt)
            return Zt.grad, Wt.grad, Vt.grad

        sides.update({"torch 1": _torch_threads(torch, 1, torch_step), "torch 2": _torch_threads(torch, 2, torch_step)})
        torch_step()
        err_torch = max(nf.rel_error(a.detach().numpy(), b) for a, b in zip(torch_step(), reference()))
    err = max(nf.rel_error(a, b) for a, b in zip(_threads(nf, 2, fast)(), reference()))
    t = side_by_side(sides, repeats)
    nf.fast.set_num_threads(None)
    rate = {k: 2 * size**3 / t[f"gemm {k}"] for k in (1, 2)}
    where = f"B={B}, n={n}, d={d}, float64, dense weights"
    ratio = t["fast 1"] / t["reference"]
    table.add(f"fast full forward + backward / textbook layer, 1 thread ({where}; {1e3 * t['fast 1']:.1f} vs "
              f"{1e3 * t['reference']:.1f} ms; rel. difference {err:.0e})", f"{ratio:.2f}x", "<= 0.5x", ratio <= 0.5)
    table.add("the same twelve matrix products alone / textbook layer (a floor no reordering removes)",
              f"{t['products'] / t['reference']:.2f}x")
    table.add(f"fast full forward + backward, 2 threads / 1 thread ({1e3 * t['fast 2']:.1f} vs "
              f"{1e3 * t['fast 1']:.1f} ms)", f"{t['fast 2'] / t['fast 1']:.2f}x", "(< 1x)", t["fast 2"] < t["fast 1"])
    for k in (1, 2):
        bound = flops / rate[k]
        table.add(f"fast full forward + backward / lower bound, {k} thread{'s' * (k > 1)}: {flops / 1e9:.3f} GFLOP of "
                  f"products at the {rate[k] / 1e9:.0f} GFLOP/s of a {size}x{size} GEMM on {k} BLAS thread"
                  f"{'s' * (k > 1)} = {1e3 * bound:.1f} ms, fast {1e3 * t[f'fast {k}']:.1f} ms",
                  f"{t[f'fast {k}'] / bound:.2f}x")
    for k in (1, 2):
        what = f"fast full forward + backward / PyTorch {'' if torch is None else torch.__version__ + ' '}" \
               f"CPU autograd, {k} thread{'s' * (k > 1)} each"
        if torch is None:
            table.add(what, "skipped: PyTorch is not installed (or --no-torch)")
            continue
        ratio = t[f"fast {k}"] / t[f"torch {k}"]
        table.add(f"{what} ({1e3 * t[f'fast {k}']:.1f} vs {1e3 * t[f'torch {k}']:.1f} ms; PyTorch's rel. "
                  f"difference {err_torch:.0e})", f"{ratio:.2f}x", "<= 1x", ratio <= 1.0)


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
    what = (f"training one layer to 1e-6 relative distance (Adam lr {lr}, B={batch}, n={n}, d={d}, eta={eta}, "
            "zero start)")
    from ngdformer.training import train_one_step_layer

    nf.fast.set_num_threads(1)
    _, _, hist = train_one_step_layer(np.random.default_rng(0), n=n, d=d, eta=eta, iterations=steps, batch=batch, lr=lr,
                                      sigma0=1.0, schedule="constant", quiet=True)
    nf.fast.set_num_threads(None)
    reached = np.flatnonzero(hist["dist"] < 1e-6)
    if reached.size == 0:
        table.add(what, f"not reached in {steps} steps (distance {hist['dist'][-1]:.1e}, {hist['seconds']:.1f} s)")
        return
    t = int(reached[0]) + 1
    table.add(f"{what}: {t} steps at {1e3 * hist['seconds'] / steps:.1f} ms per step",
              f"{hist['seconds'] * t / steps:.1f} s")


def _torch_adam(torch, np, d: int, zero: bool, rng, init_scale: float):
    """Weights W, V (2d, 2d) as PyTorch leaves with an Adam optimizer, started as the package starts them."""
    D = 2 * d
    W, V = (np.zeros((D, D)), np.zeros((D, D))) if zero else tuple(init_scale * rng.standard_normal((2, D, D)))
    W, V = torch.tensor(W, requires_grad=True), torch.tensor(V, requires_grad=True)
    return W, V, torch.optim.Adam([W, V], lr=1e-2)


def bench_training_steps(nf, np, table: Table, repeats: int, torch) -> None:
    """Steps per second of the two training loops, their loss kernels, and the same loops in PyTorch."""
    from ngdformer.looped_training import looped_batch, train_looped
    from ngdformer.training import one_step_batch, train_one_step_layer

    one = dict(n=40, d=10, eta=0.5, batch=256)  # the one-step layer, as in the time-to-1e-6 row
    looped = dict(n=40, d=10, depth=5, batch=64)  # train_looped's defaults, five loops
    steps = 4  # per round: 21 rounds of each side, PyTorch on two threads included
    rng = np.random.default_rng(5)
    Z, target = one_step_batch(rng, one["batch"], one["n"], one["d"], one["eta"])
    W, V = 0.1 * rng.standard_normal((2, 2 * one["d"], 2 * one["d"]))

    def pair():  # the one-step loss as the query-only layer and its backward (what training.py calls today)
        out, cache = nf.fast._query_forward(Z, W, V, one["n"])
        r = out[..., -1] - target
        dout = np.zeros_like(out)
        dout[..., -1] = r / one["batch"]
        return 0.5 * float(np.sum(r * r)) / one["batch"], *nf.fast._query_backward(dout, cache)[1:]

    sides = {
        "lean": _threads(nf, 1, lambda: nf.fast._one_step_loss(W, V, Z, target)), "pair": _threads(nf, 1, pair),
        "one-step 1": _threads(nf, 1, lambda: train_one_step_layer(rng, **one, iterations=steps, lr=1e-2,
                                                                   schedule="constant", quiet=True)),
        "looped 1": _threads(nf, 1, lambda: train_looped(rng, **looped, iterations=steps, quiet=True)),
        "looped 2": _threads(nf, 2, lambda: train_looped(rng, **looped, iterations=steps, quiet=True))}
    if torch is not None:
        def torch_one_step():
            Wt, Vt, opt = _torch_adam(torch, np, one["d"], True, rng, 0.0)
            n_, B_ = one["n"], one["batch"]
            for _ in range(steps):
                Zb, tb = (torch.from_numpy(x) for x in one_step_batch(rng, B_, n_, one["d"], one["eta"]))
                q, K = Zb[..., -1:], Zb[..., :n_]
                o = q + Vt @ (K @ torch.softmax(K.transpose(-1, -2) @ (Wt @ q), dim=-2))
                loss = 0.5 * ((o[..., 0] - tb) ** 2).sum() / B_
                opt.zero_grad()
                loss.backward()
                opt.step()

        def torch_looped():
            Wt, Vt, opt = _torch_adam(torch, np, looped["d"], False, rng, 0.01)
            n_, d_, B_ = looped["n"], looped["d"], looped["batch"]
            for _ in range(steps):
                Zb, targets = looped_batch(rng, B_, n_, d_, "w_star")
                Zt = torch.from_numpy(Zb)
                for _ in range(looped["depth"]):
                    Zt = _torch_layer(torch, Zt, Wt, Vt, n_)
                loss = 0.5 * ((Zt[..., d_:, -1] - torch.from_numpy(targets["w_star"])) ** 2).sum() / B_
                opt.zero_grad()
                loss.backward()
                opt.step()

        sides.update({"torch one-step 1": _torch_threads(torch, 1, torch_one_step),
                      "torch looped 1": _torch_threads(torch, 1, torch_looped),
                      "torch looped 2": _torch_threads(torch, 2, torch_looped)})
    same = all(np.array_equal(a, b) for a, b in zip(nf.fast._one_step_loss(W, V, Z, target), pair()))
    t = side_by_side(sides, repeats)
    nf.fast.set_num_threads(None)
    ratio = t["lean"] / t["pair"]
    table.add(f"lean one-step loss kernel `fast._one_step_loss` / query-only layer + backward, per call "
              f"(B={one['batch']}, n={one['n']}, d={one['d']}; {1e3 * t['lean']:.2f} vs {1e3 * t['pair']:.2f} ms; "
              f"{'bit-identical' if same else '**not** bit-identical'})", f"{ratio:.2f}x")
    rows = [("`train_one_step_layer`", one, "one-step 1", 1), ("`train_looped`", looped, "looped 1", 1),
            ("`train_looped`", looped, "looped 2", 2)]
    for name, sizes, key, k in rows:
        shown = ", ".join(f"{a}={b}" for a, b in sizes.items())
        value = f"{steps / t[key]:.0f} steps/s"
        if torch is None:
            table.add(f"{name} ({shown}, Adam), {k} thread{'s' * (k > 1)}; PyTorch skipped (not installed, "
                      "or --no-torch)", value)
            continue
        other = t["torch " + key]
        table.add(f"{name} ({shown}, Adam), {k} thread{'s' * (k > 1)}; the same loop in PyTorch autograd: "
                  f"{steps / other:.0f} steps/s", value, "faster than PyTorch", t[key] < other)


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
        table.add(f"peak memory of a looped evaluation, {label} (B={B}, n={n}, d={d}; "
                  f"Z is {Z.nbytes / 2**20:.2f} MiB), "
                  + ", ".join(f"{L} loops {p / 2**20:.2f} MiB" for L, p in zip(loops, peaks)),
                  f"{growth:.2f}x from 10 to 1000 loops", "independent of loops", growth <= 1.05)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--as-is", action="store_true", help="keep the caller's BLAS threads and malloc settings")
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds per ratio (default 21)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparisons")
    args = parser.parse_args(argv)
    if not args.as_is:
        _relaunch_pinned()
    import numpy as np

    import ngdformer as nf

    torch = None if args.no_torch else _import_torch()
    pinned = "as is" if args.as_is else "pinned: 1 BLAS thread, malloc keeps freed memory"
    print(f"ngdformer {nf.__version__}, NumPy {np.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, environment {pinned}; medians of {args.repeats} interleaved rounds")
    print(describe_threads(nf, torch) + "\n")
    table = Table(args.quiet)
    bench_full_layer(nf, np, table, args.repeats, torch)
    bench_query_vs_ngd(nf, np, table, args.repeats)
    bench_query_scaling(nf, np, table, args.repeats, B=16, goal=True)  # every size inside a 32 MiB L3
    bench_query_scaling(nf, np, table, args.repeats, B=64, goal=False)  # leaves it from n = 2048
    bench_training(nf, np, table)
    bench_training_steps(nf, np, table, args.repeats, torch)
    bench_memory(nf, np, table)
    print(table.markdown())


def _import_torch():
    """PyTorch if it imports (a comparison only, never a dependency of the package), else None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_default_dtype(torch.float64)
    return torch


def describe_threads(nf, torch) -> str:
    """The BLAS (threadpoolctl: library, kernel family, threading layer, threads), the kernels. threads, PyTorch.s."""
    import threadpoolctl

    libs = [f"{i.get('internal_api')} {i.get('version')} (kernels {i.get('architecture', '?')}, "
            f"{i.get('threading_layer', '?')}, {i.get('num_threads')} thread{'s' * (i.get('num_threads') != 1)})"
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    knobs = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                      if k in os.environ) or "no thread variables set"
    text = (f"BLAS: {'; '.join(libs) or 'none found by threadpoolctl'}; {knobs}; fast kernels: "
            f"{nf.fast.get_num_threads()} thread(s) by default, rows say where 2 run")
    if torch is not None:
        text += f"; PyTorch {torch.__version__}: {torch.get_num_threads()} thread(s) by default, rows set 1 or 2"
    return text


if __name__ == "__main__":
    main()
