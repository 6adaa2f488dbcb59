"""The one error hierarchy of modelward: every failure to run is an ``Error``.

Findings about a model are data (see :mod:`modelward.models`); an exception means modelward itself
could not do what was asked. The CLI catches only :class:`Error`, prints ``diagnostics()`` and exits 2.

::

    Error
    ├── UsageError          bad arguments or options (a path that does not exist, a bad severity)
    ├── ScanError           the scanner could not run at all (not: a file it could not read)
    └── PolicyError         a policy that does not parse or evaluate (file:line); never an "allow"
"""

from __future__ import annotations


class Error(Exception):
    """Root of every error modelward raises on purpose."""

    def diagnostics(self) -> str:
        """A message for a person: what went wrong and, where known, what to do."""
        return str(self)


class UsageError(Error):
    """The caller asked for something that cannot be done as asked."""


class ScanError(Error):
    """The scanner could not run (not a per-file problem: those go into the report)."""


class PolicyError(Error):
    """A policy could not be parsed or evaluated; the message names the file and line."""
