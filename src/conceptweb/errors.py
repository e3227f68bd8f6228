"""The one exception type for user mistakes: the CLI prints it as a single line."""


class ConceptwebError(Exception):
    """A problem the user can fix (bad input, wrong directory, impossible parameters)."""
