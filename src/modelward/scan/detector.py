"""The ``Detector`` interface and the registry that picks one by content.

Adding a format is one new module under :mod:`modelward.scan.formats` that defines a subclass
decorated with :func:`register`, plus its name in ``registry.FORMAT_MODULES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, TypeVar

from modelward.scan.context import ScanContext
from modelward.scan.source import Source

HEAD_SIZE = 4096
"""How many leading bytes every detector's ``matches`` gets to look at."""


class Detector(ABC):
    """Recognises one format family by content and scans it statically."""

    format: ClassVar[str]
    """The format id reported (``gguf``, ``pickle`` ...); ``ctx.format`` may refine it."""
    extensions: ClassVar[tuple[str, ...]] = ()
    """Lower-case extensions (with dot) whose files claim to be this format."""
    priority: ClassVar[int] = 100
    """Lower runs first; magic-number formats before heuristic ones."""

    @abstractmethod
    def matches(self, head: bytes, src: Source) -> bool:
        """Whether ``src`` (whose first bytes are ``head``) is of this format. Must be cheap."""

    @abstractmethod
    def scan(self, src: Source, ctx: ScanContext) -> None:
        """Analyse ``src``: report findings and metadata on ``ctx``. Never execute anything.

        Malformed input is reported as a finding, never raised. Exceptions that escape are caught
        by the engine and reported as ``format.analysis-failed``.
        """


_REGISTRY: list[Detector] = []
D = TypeVar("D", bound=type[Detector])


def register(cls: D) -> D:
    """Class decorator: add a detector to the registry."""
    _REGISTRY.append(cls())
    _REGISTRY.sort(key=lambda d: d.priority)
    return cls


def detectors() -> list[Detector]:
    return list(_REGISTRY)
