"""pytest settings for the notebooks.

``assignments/`` holds what ``python course/release.py`` ships from the nbgrader course in
``course/``: the student versions (``*-exercise.ipynb``, made by ``nbgrader
generate_assignment``) and copies of the executed instructor versions
(``*-solution.ipynb``).  The student versions' answers are ``raise NotImplementedError()``,
so running them under nbval as checked notebooks would only test that they are unfinished:
nbval runs the solution notebooks instead, and ``tests/test_course.py`` autogrades the
student versions with nbgrader (their tests must say "NOT YET" and score 0).
"""
collect_ignore_glob = ["assignments/*-exercise.ipynb"]
