"""Static analysis of pickle opcode streams (never unpickled)."""

from modelward.scan.pickle.analyzer import (
    PickleGlobal,
    PickleStream,
    analyze_pickles,
    looks_like_pickle,
)

__all__ = ["PickleGlobal", "PickleStream", "analyze_pickles", "looks_like_pickle"]
