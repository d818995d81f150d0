"""pytest settings for the notebooks.

The exercise notebooks in ``assignments/`` are the student versions: their
answers are ``raise NotImplementedError()``, so running them under nbval as
checked notebooks would only test that they are unfinished.  nbval runs the
solution notebooks instead; ``tests/test_assignments.py`` checks that each
exercise notebook runs to the end and its checks say "NOT YET".
"""
collect_ignore_glob = ["assignments/*-exercise.ipynb"]
