"""Preprocessing: the paper's transform of raw counts."""

from ._prepare import UNS_KEY, preprocess

__all__ = ["UNS_KEY", "preprocess"]
