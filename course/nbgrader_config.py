"""nbgrader configuration of the revlearn course (run nbgrader from this directory).

The source notebooks (instructor versions, with solutions and hidden tests) are
source/<assignment>/<assignment>.ipynb; nbgrader writes release/, submitted/,
autograded/, feedback/ and the gradebook (gradebook.db, sqlite) next to this file.
"""
c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "revlearn"

# The hidden checks are small problems (seconds), but leave room for a slow machine.
c.Execute.timeout = 300

# Student versions without the instructor's run: outputs go (nbgrader's default), and so do
# the execution timestamps that running the source notebook left in each cell's metadata.
c.ClearOutput.remove_metadata_fields = {"collapsed", "scrolled", "execution"}
