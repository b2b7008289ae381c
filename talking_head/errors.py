"""Errors a user can act on.

Every exception that reaches a person (CLI line, Gradio message) is a ``TalkingHeadError``:
its ``str()`` is one sentence that says what went wrong and what to do about it. Anything else
escaping the library is a bug.
"""


class TalkingHeadError(Exception):
    """Base of all user-facing errors; the message says what to do."""


class ImageError(TalkingHeadError):
    """The portrait image cannot be used."""


class ClipError(TalkingHeadError):
    """The driving clip cannot be used."""


class FaceNotFoundError(TalkingHeadError):
    """No usable face where one is needed."""


class GalleryError(TalkingHeadError):
    """A gallery id or manifest problem."""


class EngineUnavailableError(TalkingHeadError):
    """The requested engine cannot run here (missing weights, device or package)."""


class Cancelled(TalkingHeadError):
    """The caller cancelled the render; nothing was written."""

    def __init__(self, message: str = "Rendering was cancelled; nothing was written."):
        super().__init__(message)


class CheckpointError(EngineUnavailableError):
    """A learned weights file is missing, incomplete, corrupt, unsafe or not what its spec says.

    ``reason`` is one of ``missing``, ``size``, ``sha256``, ``unreadable``, ``unsafe``, ``layout``;
    ``spec`` is the :class:`talking_head.checkpoints.FileSpec` concerned (or None).
    """

    def __init__(self, message: str, *, spec=None, reason: str = ""):
        super().__init__(message)
        self.spec = spec
        self.reason = reason
