"""Every notebook is executed, in order, with outputs, and is part of the nbval run.

nbval can only compare what was stored, so a notebook committed without
outputs, or run out of order, or silently left out of the collection, would
make the notebook tests pass without checking anything.
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
# Student versions of assignments deliberately do not solve their task, so nbval does not
# run them; tests/test_assignments.py runs them and checks their feedback says "not yet".
EXERCISES = [p for p in NOTEBOOKS if "assignments" in p.parts and "exercise" in p.name]
CHECKED = [p for p in NOTEBOOKS if p not in EXERCISES]
CORE = [p for p in CHECKED if p.parent.name == "notebooks" and re.match(r"(0[1-5]|11)-", p.name)]
NBVAL_ARGS = ["--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with",
              "notebooks/sanitize.cfg"]


def _code_cells(path):
    nb = json.loads(path.read_text())
    return nb, [c for c in nb["cells"] if c["cell_type"] == "code"]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_notebooks():
    assert len(CORE) >= 1


def test_every_notebook_is_collected_by_nbval():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *NBVAL_ARGS,
                          "notebooks"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = set(re.findall(r"^(notebooks/\S+\.ipynb)::", out.stdout, re.M))
    missing = set(_ids(CHECKED)) - collected
    assert not missing, f"notebooks missing from the nbval run: {sorted(missing)}\n{out.stdout[-2000:]}"
    assert not collected & set(_ids(EXERCISES))


@pytest.mark.parametrize("path", CHECKED, ids=_ids(CHECKED))
def test_executed_top_to_bottom_with_outputs(path):
    nb, cells = _code_cells(path)
    counts = [c["execution_count"] for c in cells if "".join(c["source"]).strip()]
    assert None not in counts, f"{path.name}: unexecuted code cells; run it top to bottom"
    assert counts == list(range(1, len(counts) + 1)), \
        f"{path.name}: cells executed out of order or re-run ({counts})"
    for c in cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{path.name}: a cell stored an error"


@pytest.mark.parametrize("path", CHECKED, ids=_ids(CHECKED))
def test_no_machine_paths_in_notebooks(path):
    text = path.read_text()
    for pattern in ("/work/", "/tmp/", "/root/", ".venv"):
        assert pattern not in text, f"{path.name} mentions a local path {pattern!r}"


@pytest.mark.parametrize("path", CHECKED, ids=_ids(CHECKED))
def test_key_numbers_are_checked_by_nbval(path):
    _, cells = _code_cells(path)
    assert any("".join(c["source"]).lstrip().startswith("# NBVAL_CHECK_OUTPUT") for c in cells), \
        f"{path.name}: no cell is marked # NBVAL_CHECK_OUTPUT"


@pytest.mark.parametrize("path", CORE, ids=_ids(CORE))
def test_core_notebooks_have_a_widget_and_a_try_this(path):
    nb, cells = _code_cells(path)
    widget_outputs = [o for c in cells for o in c.get("outputs", [])
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_outputs, f"{path.name}: no ipywidgets control rendered"
    markdown = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"try this", markdown, re.I), f"{path.name}: no 'Try this' section"


PLACEHOLDER = re.compile(r"\bTODO\b|\bTBD\b|\bFIXME\b|TO BE WRITTEN|\bXXX\b|lorem ipsum", re.I)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_placeholder_text_in_markdown(path):
    # a half-written notebook must not pass for a finished one
    nb = json.loads(path.read_text())
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "markdown":
            m = PLACEHOLDER.search("".join(c["source"]))
            assert not m, f"{path.name}, cell {i}: placeholder text {m.group(0)!r}"
