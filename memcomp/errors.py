"""Exceptions that the CLI turns into clean messages and exit codes."""

from __future__ import annotations


class MemcompError(Exception):
    """Base class for errors that are reported without a traceback."""

    exit_code = 1


class InputError(MemcompError):
    """Bad input from the user (suite, option, name, data files): exit code 2."""

    exit_code = 2


class UnknownNameError(InputError):
    """A registry lookup failed; the message lists valid names and the closest match."""


class DataError(InputError):
    """A dataset is missing, malformed or too small for the requested settings."""
