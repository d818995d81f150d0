"""Measuring peak memory of a computation (numpy arrays included).

``tracemalloc`` sees every allocation numpy makes, so the peak it reports is
the memory a computation really needed: the number to compare between exact
reversal (flat in T) and autograd through the unrolled loop (linear in T).
"""
import gc
import tracemalloc


def peak_memory(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; return ``(result, peak_bytes)`` allocated during the call."""
    gc.collect()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not already:
            tracemalloc.stop()
    return result, peak
