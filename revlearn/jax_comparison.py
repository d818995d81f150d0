"""revlearn's exact hypergradient with a loss written in JAX, against JAX's own.

A JAX user who wants the hypergradient of momentum SGD writes ``jax.grad`` through a
``lax.scan`` of the T training steps (``revlearn.jax_backend.momentum_hypergrad_reference``):
one jit-compiled program that keeps every step's intermediates ("unrolled"), or, with
``jax.checkpoint`` around each step, recomputes the step in the backward pass and keeps
only its input, the state (x, v) ("checkpointed").  Either way its memory grows with T.
revlearn with ``backend="jax"`` keeps the exact engine (fixed point, information buffer,
the one reverse loop) in numpy and makes one compiled call per reverse step for momentum
(the gradient and the Hessian-vector product together; Adam's cotangent needs the gradient
first, so it makes two); its memory does not grow with T beyond the buffer.  This module measures both on one problem: time per step and peak memory.

Memory.  ``revlearn.memory.peak_memory`` (tracemalloc) sees the allocations of Python and
numpy, not the buffers XLA allocates, so here every measurement runs in a fresh Python
process, which reports two numbers: its peak resident memory (``peak_bytes``: the imports,
the compilers and the run together; case "imports" is the baseline of the imports alone),
and how far its resident memory rose during one run of the compiled method
(``run_bytes``, ``resident_rise``): the memory the method itself needs.

Both ``python -m revlearn.bench --only jax`` (784-50-50-50-10 net, batches of 200) and
notebook 12 (the 64-20-10 net of notebook 04's checkpointing section) measure with ``compare``; one process
runs ``revlearn.bench.jax_case``.
"""
import ctypes
import gc
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np

CASES = {
    "imports": "JAX, numpy and revlearn imported, the problem built, nothing run (the baseline)",
    "train": "float training with the JAX loss (revlearn.train, backend='jax')",
    "revlearn": "revlearn's exact hypergradient with the JAX loss (backend='jax')",
    "revlearn-autograd": "revlearn's exact hypergradient with the same loss in autograd",
    "checkpointed": "JAX's own: jax.grad through lax.scan, jax.checkpoint around each step",
    "unrolled": "JAX's own: jax.grad through lax.scan, every intermediate kept",
}
HYPERGRADIENTS = ("revlearn", "checkpointed", "unrolled")
PAPER = dict(sizes=(784, 50, 50, 50, 10), batch=200, n_examples=1000)   # the bench's problem
SMALL = dict(sizes=(64, 20, 10), batch=50, n_examples=500)              # notebook 12 (notebook 04's frontier net)


def jax_problem(T, batch=200, n_examples=1000, sizes=(784, 50, 50, 50, 10), seed=0):
    """``revlearn.bench.paper_problem`` with its losses written in jax.numpy: the same
    seeded random data, tanh net, x0, alpha = 0.1 and beta = 0.9; minibatch t is the same
    contiguous slice of the data, cut with ``lax.dynamic_slice`` at the traced t.
    Returns ``(train_loss(x, meta, t), meta_loss(x, meta), x0, alphas, betas)``."""
    import jax
    import jax.numpy as jnp

    from .bench import paper_problem
    from .jax_backend import mlp_loss
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1 \
            or n_examples % batch:
        # dynamic_slice clamps a slice that runs past the end, numpy's slicing shortens it:
        # the two problems would differ in their last batch
        raise ValueError(f"batch must be a whole number >= 1 that divides n_examples = "
                         f"{n_examples}, got {batch!r}")
    _, _, x0, alphas, betas = paper_problem(T, batch=batch, n_examples=n_examples,
                                            sizes=sizes, seed=seed)
    rng = np.random.default_rng(seed)             # the draws of paper_problem, in order
    X = jnp.asarray(rng.standard_normal((n_examples, sizes[0])))
    Y = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], n_examples)])
    nll = mlp_loss(list(sizes))

    def train_loss(x, meta, t):
        i = (t * batch) % n_examples
        return nll(x, jax.lax.dynamic_slice_in_dim(X, i, batch),
                   jax.lax.dynamic_slice_in_dim(Y, i, batch))

    def meta_loss(x, meta):
        return nll(x, X[:batch], Y[:batch])
    return train_loss, meta_loss, x0, alphas, betas


def _status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+) kB", f.read()).group(1)) * 1024


_highest_before_reset = 0      # the high-water mark resident_rise reset, kept for peak_resident


def peak_resident():
    """This process's peak resident memory in bytes.  On Linux the kernel's high-water mark
    of this program (``VmHWM``; ``getrusage``'s ``ru_maxrss`` would also count the parent
    process this one was started from, copied at the fork), also across ``resident_rise``'s
    resets; elsewhere ``ru_maxrss``."""
    try:
        return max(_status("VmHWM"), _highest_before_reset)
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024    # bytes on macOS, else kB


def resident_rise(fn, runs=2):
    """How far this process's resident memory rises above where it stood while ``fn()``
    runs (bytes; the largest of ``runs`` runs).  Before each run the memory freed so far is
    handed back to the system (glibc's ``malloc_trim``) and the kernel's high-water mark is
    reset (Linux's ``/proc/self/clear_refs``), so a run has to take its working memory
    anew: the rise is what one run needs, XLA's buffers included.  Run ``fn`` once before,
    so that compiling does not count.  Returns None where the system offers neither (not
    Linux with glibc); then only a fresh process's peak (``peak_resident``) is available."""
    global _highest_before_reset
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
        _status("VmHWM")
        with open("/proc/self/clear_refs", "w"):
            pass
    except (OSError, AttributeError):
        return None
    rise = 0
    for _ in range(runs):
        gc.collect()
        trim(0)
        _highest_before_reset = peak_resident()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                       # VmHWM := the current VmRSS
        before = _status("VmRSS")
        fn()
        # (a run can reuse memory that trim could not hand back and rise less: keep the largest)
        rise = max(rise, _status("VmHWM") - before)
    return rise


def in_fresh_process(case, T, *, repeats=3, **problem):
    """Run ``revlearn.bench.jax_case(case, T, repeats, **problem)`` in a new Python process;
    returns its dict (``seconds`` per step, ``peak_bytes``, ``run_bytes``)."""
    if case not in CASES:
        raise ValueError(f"case must be one of {sorted(CASES)}, got {case!r}")
    code = ("import json, sys; from revlearn.bench import jax_case; "
            "a = json.loads(sys.argv[1]); "
            "print(json.dumps(jax_case(a['case'], a['T'], a['repeats'], **a['problem'])))")
    args = json.dumps(dict(case=case, T=int(T), repeats=int(repeats), problem=problem))
    out = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True)
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"measuring {case!r} at T = {T} in a fresh process failed:\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class JaxComparison:
    """Time per step and memory of each case at each T, each from a fresh process."""
    Ts: tuple
    cases: tuple
    problem: dict
    seconds: dict = field(default_factory=dict)       # {(case, T): seconds per step}
    peak_bytes: dict = field(default_factory=dict)    # {(case, T): the process's peak}
    run_bytes: dict = field(default_factory=dict)     # {(case, T): one run's rise, or None}
    imports_bytes: int = 0                            # the "imports" process's peak

    @property
    def n_params(self):
        sizes = self.problem.get("sizes", PAPER["sizes"])
        return sum(m * n + n for m, n in zip(sizes[:-1], sizes[1:]))

    @property
    def state_bytes(self):
        """One momentum state, x and v in float64."""
        return 16 * self.n_params

    def memory(self, case, T):
        """What ``case`` needs at ``T``: one run's rise where measured, else the process's
        peak beyond the imports."""
        rise = self.run_bytes[case, T]
        return rise if rise is not None else self.peak_bytes[case, T] - self.imports_bytes

    def growth(self, case):
        """How much more memory (``memory``) ``case`` needs at the largest T than at the
        smallest."""
        return self.memory(case, self.Ts[-1]) - self.memory(case, self.Ts[0])

    def growth_per_step(self, case):
        return self.growth(case) / (self.Ts[-1] - self.Ts[0])

    def time_ratio(self, case, other, T=None):
        """Seconds per step of ``case`` / of ``other`` at ``T`` (default: the largest)."""
        T = self.Ts[-1] if T is None else T
        return self.seconds[case, T] / self.seconds[other, T]


def compare(Ts=(100, 1000), cases=HYPERGRADIENTS, *, repeats=3, progress=False, **problem):
    """Measure every case of ``cases`` (names in ``CASES``) at every T of ``Ts``, plus the
    "imports" baseline, each in its own fresh process (``in_fresh_process``): time per step
    is the fastest of ``repeats`` runs after one that compiles.  ``problem``: ``sizes``,
    ``batch``, ``n_examples`` of ``jax_problem`` (default the bench's 784-50-50-50-10 net;
    ``**SMALL`` is notebook 12's 64-20-10).  Needs JAX (``pip install "revlearn[jax]"``)."""
    if importlib.util.find_spec("jax") is None:
        raise ImportError('comparing with JAX needs JAX: pip install "revlearn[jax]"')
    unknown = [c for c in cases if c not in CASES or c == "imports"]
    if unknown or not cases:
        raise ValueError(f"cases must be among {sorted(set(CASES) - {'imports'})}, got {cases!r}")
    Ts = tuple(int(T) for T in Ts)
    if len(Ts) < 1 or any(T < 1 for T in Ts) or list(Ts) != sorted(set(Ts)):
        raise ValueError(f"Ts must be increasing whole numbers of steps >= 1, got {Ts!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    result = JaxComparison(Ts, tuple(cases), dict(problem))
    result.imports_bytes = in_fresh_process("imports", Ts[0], repeats=1, **problem)["peak_bytes"]
    jobs = [(c, T) for T in Ts for c in cases]
    if progress:
        from .progress import Progress
        jobs = Progress(jobs, "fresh processes", leave=False)
    for case, T in jobs:
        r = in_fresh_process(case, T, repeats=repeats, **problem)
        result.seconds[case, T] = r["seconds"]
        result.peak_bytes[case, T] = r["peak_bytes"]
        result.run_bytes[case, T] = r["run_bytes"]
    return result
