"""``python -m revlearn.bench``: speed and memory, as ratios against a baseline.

The machine is shared and noisy, so every number is a ratio between two
measurements taken in this same process, interleaved and repeated.  Buffer
timings keep the fastest of each (the least disturbed).  Training runs take
long enough for the load to drift, so each repetition times float training,
exact training and the hypergradient back to back (in alternating order) and
the ratio reported is the median over repetitions, with the range beside it.
Targets are printed beside them.  ``--quick`` shrinks the sizes for a smoke
run (the targets then do not apply).
"""
import argparse
import math
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info

from . import (MLP, Adam, BigIntBuffer, ExactArray, InfoBuffer, Momentum, hypergrad,
               hypergrad_unrolled, to_rational, train)
from .hypergrad import train_exact
from .memory import peak_memory


def best_time(fn, repeats):
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def interleaved(fns, repeats):
    """Fastest time of each function, running them in turn ``repeats`` times."""
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], best_time(fn, 1))
    return best


def paired_ratios(baseline, others, repeats):
    """Per repetition, time ``baseline`` and each of ``others`` back to back (the order
    reversed every other time, so a drift in load cancels) and divide: returns the
    baseline times and, per other function, the array of ratios."""
    fns = [baseline] + list(others)
    times = np.zeros((repeats, len(fns)))
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            times[r, i] = best_time(fns[i], 1)
    return times[:, 0], [times[:, i] / times[:, 0] for i in range(1, len(fns))]


def multiplies(Buffer, size, steps, beta=0.9, seed=0, block=None):
    """``steps`` exact multiplies (ExactArray.mul) of ``size`` random numbers by beta.

    With ``block``, also returns the time of each block of that many steps."""
    n, d = to_rational(beta)
    X = ExactArray(np.random.default_rng(seed).uniform(-100, 100, size), buffer=Buffer(size))
    times = []
    for start in range(0, steps, block or steps):
        t0 = time.perf_counter()
        for _ in range(min(block or steps, steps - start)):
            X.mul(n, d)
        times.append(time.perf_counter() - t0)
    return X.buffer, times


def paper_problem(T, batch=200, n_examples=1000, sizes=(784, 50, 50, 50, 10), seed=0):
    """Random data of the paper's shape: the 784-50-50-50-10 tanh net, batches of 200."""
    rng = np.random.default_rng(seed)
    model = MLP(list(sizes))
    X = rng.standard_normal((n_examples, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n_examples)]

    def train_loss(x, meta, t):
        i = (t * batch) % n_examples
        return model.loss(x, X[i:i + batch], Y[i:i + batch])

    def meta_loss(x, meta):
        return model.loss(x, X[:batch], Y[:batch])

    x0 = model.init(1 / np.sqrt(model.fan_in), seed)
    return train_loss, meta_loss, x0, np.full(T, 0.1), np.full(T, 0.9)


def blas_header():
    """What every ratio depends on: the BLAS library, the kernel it runs and its threads."""
    lines = [f"numpy {np.__version__} on {platform.machine()} ({os.cpu_count()} CPUs)"]
    for info in threadpool_info():
        lines.append(f"{info['user_api']}: {info['internal_api']} {info.get('version')}, "
                     f"kernel {info.get('architecture', '?')}, {info['num_threads']} threads")
    chosen = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                        "OPENBLAS_NUM_THREADS", "NPY_DISABLE_CPU_FEATURES")
              if k in os.environ}
    lines.append("environment: " + (", ".join(f"{k}={v}" for k, v in chosen.items())
                                    or "no OPENBLAS_* / NPY_* overrides"))
    return lines


def row(name, ratio, target, ok, note=""):
    mark = "ok " if ok else "MISS"
    print(f"{mark} {name:<58} {ratio:>10} {target:>14}  {note}")


def buffer_rows(q):
    """The buffer: its size against the entropy bound, its speed against big integers."""
    size, steps = (1000, 200) if q else (10_000, 1000)
    buf, _ = multiplies(InfoBuffer, size, steps)
    n, d = to_rational(0.9)
    ideal = math.log2(d / n)
    total = buf.nbits / size
    extra = total - steps * ideal
    row("InfoBuffer bits/param/step vs log2(d/n), beta 0.9", f"{total / steps / ideal:.4f}x",
        "<= 1.01x", total / steps / ideal <= 1.01 or extra <= 64,
        f"({total / steps:.5f} vs {ideal:.5f}; {extra:+.2f} bits/param overall)")

    size, steps = (10_000, 100) if q else (100_000, 1000)
    t_fast, t_big = interleaved([lambda: multiplies(InfoBuffer, size, steps),
                                 lambda: multiplies(BigIntBuffer, size, steps)], 1)
    row(f"BigIntBuffer / InfoBuffer time, {size:.0e} params x {steps} multiplies",
        f"{t_big / t_fast:.1f}x", ">= 10x", t_big / t_fast >= 10,
        f"({t_fast:.2f} s vs {t_big:.2f} s)")
    # Per-step cost early in a long run (~10^2 steps stored) and late (10^4 steps stored):
    # the fastest 100-step block of each end, so a burst of load elsewhere does not count.
    # The very first block is left out: heads start with 8 bits of slack, so for the first
    # ~50 steps no word reaches the stack at all, a cheaper regime than either end.
    size, steps = (10_000, 2000) if q else (100_000, 10_000)
    _, blocks = multiplies(InfoBuffer, size, steps, block=100)
    early, late = min(blocks[1:6]), min(blocks[-5:])
    row(f"InfoBuffer per-step cost after {steps} steps / after 100 steps", f"{late / early:.2f}x",
        "<= 1.2x", late / early <= 1.2,
        f"({10 * late:.2f} ms vs {10 * early:.2f} ms per step, {size:.0e} params)")


def training_rows(q, name, optimizer, targets):
    """Exact training and the hypergradient against float training with the same optimizer,
    784-50-50-50-10, batches of 200: medians of paired repetitions."""
    T = 20 if q else 100
    tl, ml, x0, alphas, betas = paper_problem(T)
    opt = optimizer(T)
    t_float, (exact, hyper) = paired_ratios(
        lambda: train(tl, x0, optimizer=opt),
        [lambda: train_exact(tl, x0, optimizer=opt),
         lambda: hypergrad(tl, ml, x0, optimizer=opt)], 3 if q else 10)
    for label, ratios, target in [
            (f"exact {name} training / float, 784-50-50-50-10, T={T}", exact, targets[0]),
            (f"{name} hypergradient (forward + reverse) / float training", hyper, targets[1])]:
        mid = float(np.median(ratios))
        row(label, f"{mid:.2f}x", f"<= {target:g}x", mid <= target,
            f"(median of {len(ratios)}; range {ratios.min():.2f}-{ratios.max():.2f}; "
            f"float training {np.median(t_float):.2f} s)")


def memory_rows(q, name, optimizer):
    """Peak memory: flat in T for exact reversal, linear for autograd's unrolled tape."""
    sizes = (64, 50, 10)
    mem = {}
    for T in ((20, 100) if q else (100, 1000)):
        tl, ml, x0, _, _ = paper_problem(T, batch=50, n_examples=500, sizes=sizes)
        opt = optimizer(T)
        r, mem[T, "exact"] = peak_memory(hypergrad, tl, ml, x0, optimizer=opt)
        _, mem[T, "unrolled"] = peak_memory(hypergrad_unrolled, tl, ml, x0, optimizer=opt)
        mem[T, "buffer"] = r.buffer_bits / 8
    (t1, t2) = sorted({k[0] for k in mem})
    growth = mem[t2, "exact"] / mem[t1, "exact"]
    for T in (t1, t2):
        row(f"{name}: peak memory unrolled / exact, T={T}, net {'-'.join(map(str, sizes))}",
            f"{mem[T, 'unrolled'] / mem[T, 'exact']:.0f}x", "report", True,
            f"(exact {mem[T, 'exact'] / 1e6:.2f} MB incl. buffer {mem[T, 'buffer'] / 1e3:.1f} kB; "
            f"unrolled {mem[T, 'unrolled'] / 1e6:.1f} MB)")
    flat = mem[t2, "exact"] - mem[t2, "buffer"] <= 1.2 * mem[t1, "exact"]
    row(f"{name}: exact peak memory T={t2} / T={t1}", f"{growth:.2f}x", "flat + buffer", flat,
        f"(the buffer adds {(mem[t2, 'buffer'] - mem[t1, 'buffer']) / 1e3:.1f} kB)")


def frontier_rows(q):
    """Memory and time of the three ways to get the hypergradient, for growing T, on a net
    small enough for T = 10,000 (64-20-10, 1,510 parameters, batches of 50): exact
    reversal, checkpointing every ceil(sqrt(T)) steps, and autograd's store-all tape
    (only up to T = 1,000: beyond that it needs gigabytes).  Memory relative to exact
    reversal, time relative to float training, both from the same process.  The
    measurement is ``revlearn.frontier.measure_point``, shared with notebook 04."""
    from .frontier import STORE_ALL_MAX_T, measure_point   # revlearn.frontier imports this module
    Ts = (30, 100) if q else (100, 1000, 10_000)
    results = {}
    for T in Ts:
        methods = ("exact", "checkpointed") + (("store-all",) if T <= STORE_ALL_MAX_T else ())
        rows = measure_point(T, methods, repeats=1 if T > 1000 else 3)
        for name, r in rows.items():
            results[T, name] = (r.peak_bytes, r.time_ratio)
        for name in methods:
            peak, slow = results[T, name]
            row(f"T={T:<6} {name:<13} memory / exact, time / float",
                f"{peak / results[T, 'exact'][0]:.1f}x", "report", True,
                f"({peak / 1e6:.2f} MB; {slow:.1f}x float training)")
    big = Ts[-1]
    ratio = results[big, "checkpointed"][0] / results[big, "exact"][0]
    cost = results[big, "exact"][1] / results[big, "checkpointed"][1]
    print(f"     at T={big}: checkpointing needs {ratio:.1f}x the memory of exact reversal, "
          f"which takes {cost:.2f}x checkpointing's time")
    return results


def jax_case(what, T, repeats=3, sizes=(784, 50, 50, 50, 10), batch=200, n_examples=1000):
    """One measurement in this (fresh) process, for ``revlearn.jax_comparison.compare``.
    The problem is ``paper_problem(T, batch, n_examples, sizes)`` with its losses in JAX
    (``jax_comparison.jax_problem``); ``what`` is one of ``jax_comparison.CASES``.  Returns
    a dict: ``seconds`` per step (the fastest of ``repeats`` runs after one that compiles;
    None for "imports"), ``peak_bytes`` (the process's peak resident memory, which sees
    XLA's buffers as tracemalloc does not: ``jax_comparison.peak_resident``) and
    ``run_bytes`` (how far resident memory rose during one run after that first one:
    ``jax_comparison.resident_rise``, None where the system cannot measure it)."""
    import jax
    import jax.numpy as jnp
    from .jax_backend import momentum_hypergrad_reference
    from .jax_comparison import CASES, jax_problem, peak_resident, resident_rise
    if what not in CASES:
        raise ValueError(f"what must be one of {sorted(CASES)}, got {what!r}")
    train_loss, meta_loss, x0, alphas, betas = jax_problem(T, batch=batch, n_examples=n_examples,
                                                          sizes=sizes)
    beta_used = to_rational(betas)[0] / 65536.0      # the rational betas revlearn uses
    if what == "imports":
        fn = None
    elif what == "train":
        fn = lambda: train(train_loss, x0, alphas, betas, backend="jax")
    elif what == "revlearn":
        fn = lambda: hypergrad(train_loss, meta_loss, x0, alphas, betas, backend="jax")
    elif what == "revlearn-autograd":
        tl, ml, *_ = paper_problem(T, batch=batch, n_examples=n_examples, sizes=sizes)
        fn = lambda: hypergrad(tl, ml, x0, alphas, betas)
    else:
        ref = momentum_hypergrad_reference(lambda x, t: train_loss(x, None, t),
                                           lambda x: meta_loss(x, None), x0, alphas, beta_used,
                                           checkpoint=(what == "checkpointed"))
        args = (jnp.asarray(alphas), jnp.asarray(beta_used), jnp.asarray(x0))
        fn = lambda: jax.block_until_ready(ref(*args))
    seconds = run_bytes = None
    if fn is not None:
        fn()                                          # compiles
        run_bytes = resident_rise(fn)
        seconds = best_time(fn, repeats) / T
    return dict(seconds=seconds, peak_bytes=peak_resident(), run_bytes=run_bytes)


def jax_rows(q):
    """revlearn's exact hypergradient with a JAX loss against JAX's own, jit-compiled, on the
    784-50-50-50-10 net (batches of 200): time per step, and peak memory of a fresh process
    each (``revlearn.jax_comparison.compare``; JAX's import alone takes a few hundred MB,
    the same for all)."""
    from .jax_comparison import PAPER, compare
    Ts = (20, 100) if q else (100, 1000)
    c = compare(Ts, ("train", "revlearn", "checkpointed", "unrolled"), **PAPER)
    big = Ts[-1]
    for what in ("checkpointed", "unrolled"):
        ratio = c.time_ratio("revlearn", what)
        row(f"revlearn-jax hypergradient / JAX {what}, per step, T={big}", f"{ratio:.2f}x",
            "<= 1x" if what == "checkpointed" else "report", ratio <= 1 or what != "checkpointed",
            f"({1e3 * c.seconds['revlearn', big]:.2f} vs {1e3 * c.seconds[what, big]:.2f} ms per "
            f"step; JAX training {1e3 * c.seconds['train', big]:.2f} ms)")
    mb = lambda b: "n/a" if b is None else f"{b / 1e6:.1f}"
    for T in Ts:
        row(f"peak memory, T={T}: revlearn-jax / JAX checkpointed / JAX unrolled",
            f"{c.peak_bytes['revlearn', T] / 1e6:.0f} MB", "report", True,
            f"(/ {c.peak_bytes['checkpointed', T] / 1e6:.0f} MB / "
            f"{c.peak_bytes['unrolled', T] / 1e6:.0f} MB; float training alone "
            f"{c.peak_bytes['train', T] / 1e6:.0f} MB; the imports alone "
            f"{c.imports_bytes / 1e6:.0f} MB)")
        row(f"memory of one run, T={T}: revlearn-jax / JAX checkpointed / JAX unrolled",
            f"{mb(c.run_bytes['revlearn', T])} MB", "report", True,
            f"(/ {mb(c.run_bytes['checkpointed', T])} MB / {mb(c.run_bytes['unrolled', T])} MB)")


SECTIONS = ("buffer", "training", "memory", "adam", "frontier", "jax")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--only", choices=SECTIONS, nargs="+", help="run only these sections")
    args = ap.parse_args(argv)
    q = args.quick
    only = set(args.only or SECTIONS)
    for line in blas_header():
        print(line)
    print(f"{'':4} {'measurement':<58} {'ratio':>10} {'target':>14}")
    momentum = lambda T: Momentum(np.full(T, 0.1), np.full(T, 0.9))
    adam = lambda T: Adam(np.full(T, 1e-3), np.full(T, 0.9), np.full(T, 0.999))
    if "buffer" in only:
        buffer_rows(q)
    if "training" in only:
        training_rows(q, "momentum", momentum, (1.15, 3.6))
    if "memory" in only:
        memory_rows(q, "momentum", momentum)
    if "adam" in only:
        training_rows(q, "Adam", adam, (1.5, 4.5))
        memory_rows(q, "Adam", adam)
    if "frontier" in only:
        frontier_rows(q)
    if "jax" in only:
        try:
            import jax  # noqa: F401
        except ImportError:
            print('     (JAX rows skipped: pip install "revlearn[jax]")')
        else:
            jax_rows(q)


if __name__ == "__main__":
    main()
