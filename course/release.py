"""Make the student versions of the course's assignments with nbgrader and ship them.

    python course/release.py           # regenerate notebooks/assignments/ from course/source/
    python course/release.py --check   # only compare; exit 1 naming what is out of date

For every assignment in ``course/source/`` this runs ``nbgrader generate_assignment``
in a temporary copy of the course directory (your gradebook and ``release/`` stay
untouched), then writes

* ``notebooks/assignments/<assignment>-exercise.ipynb``: nbgrader's student version
  (``release/<assignment>/<assignment>.ipynb``: solutions and hidden tests removed,
  outputs cleared), for Binder and self-study;
* ``notebooks/assignments/<assignment>-solution.ipynb``: a copy of the executed source
  notebook, which nbval re-runs with the other notebooks.

Edit and execute the source notebooks (``jupyter nbconvert --to notebook --execute
--inplace course/source/<a>/<a>.ipynb``), then run this.  ``tests/test_course.py``
fails while the shipped notebooks differ from what this would write.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

COURSE = pathlib.Path(__file__).resolve().parent
SHIPPED = COURSE.parent / "notebooks" / "assignments"


def assignments(course=COURSE):
    """The assignment ids: the folders of ``source/`` holding a notebook of the same name."""
    return sorted(p.parent.name for p in (course / "source").glob("*/*.ipynb")
                  if p.stem == p.parent.name)


def copy_course(target, course=COURSE):
    """Copy what defines the course (its config and source notebooks) to ``target``."""
    target = pathlib.Path(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(course / "nbgrader_config.py", target / "nbgrader_config.py")
    shutil.copytree(course / "source", target / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return target


def nbgrader(course, *args):
    """Run one nbgrader command in the course directory ``course``; raise with its log."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr}")
    return done


def generate(course):
    """``nbgrader generate_assignment`` for every assignment of the course at ``course``."""
    for a in assignments(course):
        nbgrader(course, "generate_assignment", a)


def shipped_files(course):
    """{shipped notebook: the file it must equal}, for a course whose releases exist."""
    course = pathlib.Path(course)
    out = {}
    for a in assignments(course):
        out[SHIPPED / f"{a}-exercise.ipynb"] = course / "release" / a / f"{a}.ipynb"
        out[SHIPPED / f"{a}-solution.ipynb"] = course / "source" / a / f"{a}.ipynb"
    return out


def stale(files):
    """The shipped notebooks that differ from (or lack) what they must equal."""
    return [ship for ship, made in files.items()
            if not ship.exists() or ship.read_bytes() != made.read_bytes()]


def unexpected(files):
    """Notebooks in notebooks/assignments/ that no assignment produces."""
    return sorted(set(SHIPPED.glob("*.ipynb")) - set(files))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare only: exit 1 if notebooks/assignments/ is out of date")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        course = copy_course(pathlib.Path(tmp) / "course")
        generate(course)
        files = shipped_files(course)
        bad, extra = stale(files), unexpected(files)
        if args.check:
            for path in bad:
                print(f"out of date: {path.relative_to(COURSE.parent)}")
            for path in extra:
                print(f"not produced by any assignment: {path.relative_to(COURSE.parent)}")
            if bad or extra:
                print("run: python course/release.py")
            return 1 if bad or extra else 0
        SHIPPED.mkdir(parents=True, exist_ok=True)
        for ship in bad:
            shutil.copyfile(files[ship], ship)
            print(f"wrote {ship.relative_to(COURSE.parent)}")
        for path in extra:
            print(f"note: {path.relative_to(COURSE.parent)} is not produced by any assignment")
        return 0


if __name__ == "__main__":
    sys.exit(main())
