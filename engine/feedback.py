"""Feedback protocol with QgsProcessingFeedback's method names, so QGIS passes its own object through.

Passing QGIS' object itself (not a wrapper with its own state) is what keeps cancel working
(EnMAP-Box #221 lost cancels through a wrapper).
"""
from __future__ import annotations

import logging
from typing import Protocol

from .errors import Cancelled

_log = logging.getLogger("hsifusion")


class Feedback(Protocol):
    """The subset of ``QgsProcessingFeedback`` the engine uses."""

    def setProgress(self, progress: float) -> None: ...  # noqa: N802,E704
    def pushInfo(self, info: str) -> None: ...  # noqa: N802,E704
    def pushWarning(self, warning: str) -> None: ...  # noqa: N802,E704
    def reportError(self, error: str, fatalError: bool = False) -> None: ...  # noqa: N802,N803,E704
    def isCanceled(self) -> bool: ...  # noqa: N802,E704


class LogFeedback:
    """Feedback for scripts and tests: logs messages, records progress, cancellable by flag or count."""

    def __init__(self, cancel_after_progress: float | None = None, quiet: bool = True) -> None:
        self.progress: list = []
        self.messages: list = []
        self.warnings: list = []
        self.canceled = False
        self.cancel_after_progress = cancel_after_progress
        self.quiet = quiet

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.progress.append(float(progress))
        if self.cancel_after_progress is not None and progress >= self.cancel_after_progress:
            self.canceled = True

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.messages.append(info)
        if not self.quiet:
            print(info, flush=True)
        _log.info(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.warnings.append(warning)
        if not self.quiet:
            print("Warning: " + warning, flush=True)
        _log.warning(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.pushWarning(error)

    def isCanceled(self) -> bool:  # noqa: N802
        return self.canceled

    def cancel(self) -> None:
        self.canceled = True


def check_cancel(feedback: Feedback | None) -> None:
    """Raise :class:`Cancelled` when the user asked to stop."""
    if feedback is not None and feedback.isCanceled():
        raise Cancelled("cancelled by the user")


def ensure_feedback(feedback: Feedback | None) -> Feedback:
    """The given feedback, or a quiet :class:`LogFeedback`."""
    return feedback if feedback is not None else LogFeedback()
