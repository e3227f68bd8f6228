"""Exceptions the CLI turns into one line: user mistakes, and an interrupted run."""


class ConceptwebError(Exception):
    """A problem the user can fix (bad input, wrong directory, impossible parameters)."""


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C / SIGINT; the message says how to resume."""
