"""The one exception type for bad user input.

It subclasses ``ValueError`` so library callers can catch it the usual way; the CLI turns it into a
clear message and exit code 2.
"""


class InputError(ValueError):
    """Bad user input: a missing file, a malformed field, an out-of-range value."""
