"""The README's usage example and ``python -m revlearn`` run and say what they promise."""
import pathlib
import re
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_usage_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    r = scope["r"]
    assert r.exact and abs(r.bits_per_param_per_step - np.log2(65536 / 58982)) < 0.01
    assert np.isfinite(r.d_meta) and r.d_alphas.shape == (100,)


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = re.search(r'pip install -e "\.\[test\]" && (python -m pytest[^\n`]*)', readme).group(1)
    assert cmd.strip() in ci


def test_demo_prints_the_three_numbers():
    out = subprocess.run([sys.executable, "-m", "revlearn"], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    rows = re.findall(r"^\s*(0\.\d\d) \|\s*(\S+) \|\s*(\S+) \|\s*(\S+) \| (\S+)$", out, re.M)
    assert [r[0] for r in rows] == ["0.50", "0.70", "0.90"]
    for beta, naive, exact, bits, ideal in rows:
        assert float(exact) == 0.0
        assert abs(float(bits) - float(ideal)) < 0.01 * float(ideal) + 1e-3
    assert float(rows[0][1]) > 1.0  # beta = 0.5: float64 reversal is garbage after 150 steps
    exact_hg = float(re.search(r"exact hypergradient\s+(\S+)", out).group(1))
    fd = float(re.search(r"finite difference\s+(\S+)", out).group(1))
    assert abs(exact_hg - fd) < 1e-5 * abs(fd)
