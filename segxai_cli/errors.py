"""The exception types for problems a user can cause (bad input, bad options, unwritable output).

The CLI turns a :class:`SegxaiError` into a single ``error:`` line on stderr and a non-zero exit
code — 2 for a :class:`UsageError` (the command line itself is wrong: unknown method, layer or class,
a bad number), 1 otherwise (an input or output failed). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class SegxaiError(Exception):
    """A user-caused error with a message fit to print as one line."""

    exit_code = 1


class UsageError(SegxaiError):
    """An option or argument is wrong (exit code 2): nothing was processed."""

    exit_code = 2


class InputError(SegxaiError):
    """An input file (raster, mask, vector, checkpoint) is missing, unreadable or unsuitable."""


class OutputError(SegxaiError):
    """An output path cannot be written or already exists."""
