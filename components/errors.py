"""The one exception type for bad input.

Steps raise `InputError` with a message that names the culprit (file, column,
parameter). The command line turns it into a one-line `error: ...` and a
non-zero exit; inside a KFP step it is the last line of the step's log.
"""


class InputError(ValueError):
    """Bad input that the user can fix: missing file, wrong column, bad parameter."""
