"""Package-wide settings: verbosity, progress bars and the default device (like ``sc.settings``)."""

from __future__ import annotations

import logging
import sys

__all__ = ["settings", "logger"]

logger = logging.getLogger("scgan_cluster")

_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (works under pytest capture and Jupyter)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("%(message)s"))
logger.addHandler(_handler)
logger.propagate = False


class _Settings:
    """Settings of :mod:`scgan_cluster`.

    Attributes
    ----------
    verbosity
        ``"error"``, ``"warning"`` (default), ``"info"`` or ``"debug"`` (or 0-3, as in scanpy).
        At ``"info"`` every tool prints a closing ``finished: added ...`` line.
    progress_bar
        Show a tqdm bar with the current losses while training.
    device
        Default device for training when a function gets ``device="auto"``: ``"auto"`` picks
        cuda, then mps, then cpu; any torch device string pins one.
    """

    def __init__(self) -> None:
        self._verbosity = "warning"
        self.progress_bar = True
        self.device = "auto"
        self._apply()

    @property
    def verbosity(self) -> str:
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: str | int) -> None:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"verbosity must be a str or int, got {type(value).__name__}.")
        if isinstance(value, int):
            names = list(_LEVELS)
            value = names[min(max(value, 0), len(names) - 1)]
        if value not in _LEVELS:
            raise ValueError(f"verbosity must be one of {list(_LEVELS)} or 0-3, got {value!r}.")
        self._verbosity = value
        self._apply()

    def _apply(self) -> None:
        logger.setLevel(_LEVELS[self._verbosity])

    def __repr__(self) -> str:
        return (
            f"scgan_cluster settings: verbosity={self.verbosity!r}, "
            f"progress_bar={self.progress_bar}, device={self.device!r}"
        )


settings = _Settings()
