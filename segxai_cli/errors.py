"""The one exception type for problems a user can cause (bad input, bad options).

The CLI turns a :class:`SegxaiError` into a single line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SegxaiError(Exception):
    """A user-caused error with a message fit to print as one line."""


class InputError(SegxaiError):
    """An input file (raster, mask, vector, checkpoint) is missing, unreadable or unsuitable."""


class OutputError(SegxaiError):
    """An output path cannot be written or already exists."""
