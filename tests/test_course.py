"""The course on real nbgrader, end to end, in a temporary copy of ``course/``.

One module fixture runs what an instructor runs (the commands of the README's "For
instructors"): ``nbgrader generate_assignment`` for every assignment, then three students
submit every assignment -- the solutions, the unmodified student version, and a student
version with the right code filled in except one known-wrong function -- one of them through
nbgrader's exchange (``release_assignment``, ``fetch_assignment``, ``submit``,
``collect``), the others placed in ``submitted/`` by hand (nbgrader's manual route), then
``nbgrader autograde`` and ``nbgrader generate_feedback`` per assignment into a real sqlite
gradebook, ``release_feedback``/``fetch_feedback`` back to the exchange student, and
``nbgrader export``.  The tests read the gradebook, the autograded notebooks, the feedback
HTML and grades.csv.
"""
import html
import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

nbgrader_api = pytest.importorskip("nbgrader.api", reason="the course tests need nbgrader "
                                   "(pip install -e '.[course]')")

ROOT = pathlib.Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
_spec = importlib.util.spec_from_file_location("course_release", COURSE / "release.py")
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)

ASSIGNMENTS = release.assignments()
POINTS = {"01-exact-multiply": 5, "02-reverse-momentum-step": 5, "03-hypergradient": 5,
          "04-reverse-pass": 10}

# One known-wrong function per assignment, as a student would write it: (the solution cell,
# the line(s) of the solution replaced, the wrong code), the test cells that must still pass,
# and words of the NOT YET message the feedback must show.
WRONG = {
    "01-exact-multiply": dict(
        cell="mul_div_exact",
        right="    buffer.push(k % d, d)                # the digit the division would throw away\n"
              "    return (k // d) * n + buffer.pop(n)  # take back log2(n) of its log2(d) bits",
        wrong="    return (k // d) * n                  # forgets the remainder",
        passing={"test_div_exact"},
        message="nothing went into the buffer, so the remainder k mod d is lost"),
    "02-reverse-momentum-step": dict(
        cell="reverse_step",
        right="    V.add((1 - n / d) * g)\n"
              "    V.div(n, d)                 # exact: the buffer hands back the remainders",
        wrong="    V.k = V.to_fixed((V.val + (1 - n / d) * g) / (n / d))   # float division",
        passing={"test_reverse_step_x"},
        message="you divided by beta in floating point"),
    "03-hypergradient": dict(
        cell="tune_log_alpha",
        right="        log_alpha = log_alpha - meta_lr * derivative",
        wrong="        log_alpha = log_alpha + meta_lr * derivative",
        passing={"test_hypergradient"},
        message="you stepped uphill"),
    "04-reverse-pass": dict(
        cell="reverse_pass",
        right="        h_x, h_theta = problem.hvp(X.val, t, (1 - beta) * d_v)",
        wrong="        h_x, h_theta = problem.hvp(X.val, t, d_v)",
        passing={"test_reverse_pass_state"},
        message="the Hessian-vector product misses the factor (1 - beta_t)"),
}
SOLUTIONS, UNTOUCHED, ONE_WRONG = "alice-solutions", "bob-untouched", "carol-one-wrong"
VIA_EXCHANGE = "04-reverse-pass"     # alice submits this one through nbgrader's exchange


def _run(cwd, *args):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _read(path):
    return json.loads(pathlib.Path(path).read_text())


def _solution_code(source_nb, grade_id):
    """A solution cell's code as a student would type it (the nbgrader markers dropped)."""
    cell = next(c for c in source_nb["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(line for line in "".join(cell["source"]).split("\n")
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _filled_in(release_nb, source_nb, wrong=None):
    """The student version with every answer cell filled in from the solutions; ``wrong``
    replaces one function's right lines by wrong ones."""
    nb = json.loads(json.dumps(release_nb))
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if not meta.get("solution"):
            continue
        code = _solution_code(source_nb, meta["grade_id"])
        if wrong is not None and meta["grade_id"] == wrong["cell"]:
            assert wrong["right"] in code, f"{wrong['cell']}: the solution changed; update WRONG"
            code = code.replace(wrong["right"], wrong["wrong"])
        cell["source"] = code
    return nb


def _submit(course, student, assignment, nb):
    target = course / "submitted" / student / assignment / f"{assignment}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = release.copy_course(tmp / "course")
    exchange, home = tmp / "exchange", tmp / "alice"
    exchange.mkdir(mode=0o777)
    home.mkdir()
    exchange_opts = [f"--Exchange.root={exchange}", f"--Exchange.cache={tmp / 'cache'}"]

    generated = {}
    for a in ASSIGNMENTS:
        _run(course, "generate_assignment", a)
        generated[a] = course / "release" / a / f"{a}.ipynb"

    for a in ASSIGNMENTS:
        source, student = _read(course / "source" / a / f"{a}.ipynb"), _read(generated[a])
        _submit(course, UNTOUCHED, a, student)
        _submit(course, ONE_WRONG, a, _filled_in(student, source, WRONG[a]))
        if a != VIA_EXCHANGE:
            _submit(course, SOLUTIONS, a, source)
            continue
        # Alice gets this one the way students on a shared JupyterHub do.
        _run(course, "release_assignment", a, *exchange_opts)
        _run(home, "fetch_assignment", a, "--course=revlearn", *exchange_opts)
        fetched = home / a / f"{a}.ipynb"
        assert _read(fetched)["cells"] == student["cells"]
        fetched.write_text(json.dumps(_filled_in(student, source), indent=1))
        _run(home, "submit", a, "--course=revlearn", f"--student={SOLUTIONS}", *exchange_opts)
        _run(course, "collect", a, *exchange_opts)

    for a in ASSIGNMENTS:
        _run(course, "autograde", a)
        _run(course, "generate_feedback", a)
    # ... and gets the feedback back the same way.
    _run(course, "release_feedback", VIA_EXCHANGE, f"--student={SOLUTIONS}", *exchange_opts)
    _run(home, "fetch_feedback", VIA_EXCHANGE, "--course=revlearn", f"--student={SOLUTIONS}",
         *exchange_opts)
    _run(course, "export")                   # grades.csv
    return course


def _grades(course, assignment, student):
    with nbgrader_api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        return ({g.name: (g.score, g.max_score) for nb in sub.notebooks for g in nb.grades},
                sub.score, sub.max_score)


def _autograded(course, assignment, student):
    return _read(course / "autograded" / student / assignment / f"{assignment}.ipynb")


def _test_cells(nb):
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


# --- the source notebooks: nbgrader metadata ------------------------------------------------

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_a_proper_nbgrader_assignment(assignment):
    from nbgrader.nbgraderformat import MetadataValidator
    import nbformat

    nb = nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    MetadataValidator().validate_nb(nb)           # nbgrader's own check: ids, points, types
    metas = [c.metadata.get("nbgrader") for c in nb.cells]
    for cell, meta in zip(nb.cells, metas):
        if cell.cell_type == "markdown":           # instructions are read-only
            assert meta and meta["locked"] and not meta["solution"], cell.source[:60]
    answers = [c for c, m in zip(nb.cells, metas) if m and m["solution"]]
    tests = [c for c, m in zip(nb.cells, metas) if m and m["grade"]]
    assert answers and all("### BEGIN SOLUTION" in c.source for c in answers)
    assert tests
    for c in tests:
        meta = c.metadata["nbgrader"]
        assert meta["locked"] and not meta["solution"] and meta["points"] > 0
        visible, hidden = c.source.split("### BEGIN HIDDEN TESTS")
        assert "check_" in visible and "assert" in visible    # the visible test
        assert "seed=" in hidden and "### END HIDDEN TESTS" in hidden
    assert sum(c.metadata["nbgrader"]["points"] for c in tests) == POINTS[assignment]


def test_the_reverse_pass_is_worth_the_most():
    assert set(POINTS) == set(ASSIGNMENTS)
    assert max(POINTS, key=POINTS.get) == "04-reverse-pass"
    assert sorted(POINTS.values())[-1] > sorted(POINTS.values())[-2]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_shipped_solution_is_the_executed_source(assignment):
    # The nbval run of notebooks/ checks the solution copies: they must be the sources.
    shipped = release.SHIPPED / f"{assignment}-solution.ipynb"
    source = COURSE / "source" / assignment / f"{assignment}.ipynb"
    assert shipped.read_bytes() == source.read_bytes(), (
        f"{shipped.name} differs from course/source/{assignment}/: execute the source notebook "
        "and run python course/release.py")


def test_no_generator_of_our_own_is_left():
    import revlearn.assignments as A
    for name in ("make_student_version", "write_student_version", "clear_solution_region"):
        assert not hasattr(A, name)


# --- end to end with nbgrader ------------------------------------------------------------------

def test_feedback_reaches_the_student_through_the_exchange(course):
    fetched = list((course.parent / "alice" / VIA_EXCHANGE / "feedback").glob("*/*.html"))
    assert [p.name for p in fetched] == [f"{VIA_EXCHANGE}.html"]
    assert f"{VIA_EXCHANGE} (Score: 10.0 / 10.0)" in re.sub(r"<[^>]+>", " ", fetched[0].read_text())


def test_exported_grades(course):
    import csv
    with open(course / "grades.csv", newline="") as f:
        rows = {(r["assignment"], r["student_id"]): float(r["raw_score"]) for r in csv.DictReader(f)}
    for a in ASSIGNMENTS:
        assert rows[a, SOLUTIONS] == POINTS[a] and rows[a, UNTOUCHED] == 0
        assert 0 < rows[a, ONE_WRONG] < POINTS[a]
    assert len(rows) == 3 * len(ASSIGNMENTS)


def test_release_matches_the_shipped_student_notebooks(course):
    files = release.shipped_files(course)
    assert len(files) == 2 * len(ASSIGNMENTS)
    stale = [p.name for p in release.stale(files)]
    assert not stale, f"out of date: {stale}; run python course/release.py"
    assert not release.unexpected(files)


def test_student_versions_hide_solutions_and_hidden_tests(course):
    for a in ASSIGNMENTS:
        text = (course / "release" / a / f"{a}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        assert "seed=" not in text and "raise NotImplementedError" in text
        assert '"outputs": []' in text and '"output_type"' not in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_get_full_marks(course, assignment):
    grades, score, max_score = _grades(course, assignment, SOLUTIONS)
    assert max_score == POINTS[assignment] and score == max_score, grades
    assert all(s == m for s, m in grades.values())
    hidden = [c for c in _test_cells(_autograded(course, assignment, SOLUTIONS))
              if "### BEGIN HIDDEN TESTS" in "".join(c["source"])]
    assert len(hidden) == len(grades)       # nbgrader put the hidden tests back, and they ran
    for c in hidden:
        printed = json.dumps(c["outputs"])
        assert printed.count("PASS: ") == 2 and re.search(r"hidden [^\]]*seed \d+", printed)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_student_version_gets_zero_without_crashing(course, assignment):
    grades, score, max_score = _grades(course, assignment, UNTOUCHED)
    assert max_score == POINTS[assignment] and score == 0
    assert grades and all(s == 0 for s, _ in grades.values())
    nb = _autograded(course, assignment, UNTOUCHED)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            text = json.dumps(cell["outputs"])
            assert [e["ename"] for e in errors] == ["AssertionError"]
            assert "NOT YET: " in text and "raises NotImplementedError" in text
        else:                                # every other cell runs through
            assert not errors, "".join(cell["source"])[:200]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_one_wrong_function_gets_partial_marks_and_says_why(course, assignment):
    wrong = WRONG[assignment]
    grades, score, max_score = _grades(course, assignment, ONE_WRONG)
    assert 0 < score < max_score, grades
    assert {name for name, (s, m) in grades.items() if s == m} == wrong["passing"]
    assert score == sum(grades[name][1] for name in wrong["passing"])
    feedback = course / "feedback" / ONE_WRONG / assignment / f"{assignment}.html"
    text = html.unescape(feedback.read_text())
    plain = re.sub(r"<[^>]+>", " ", text)
    assert re.search(rf"{assignment} \(Score: {score:.1f} / {max_score:.1f}\)", plain)
    assert "NOT YET: " in text and wrong["message"] in text
