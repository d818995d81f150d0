import matplotlib

# Tests never open windows. Only this process: nbval's notebook kernels keep the inline
# backend, so every figure in the notebooks is really drawn under test.
matplotlib.use("Agg")
