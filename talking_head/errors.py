"""Errors a user can act on, and notes about a finished render.

Every exception that reaches a person (CLI line, Gradio message) is a ``TalkingHeadError``:
its ``str()`` is one sentence that says what went wrong and what to do about it. Anything else
escaping the library is a bug.

Both carry a ``reason`` (a short code such as ``not_image``) and the ``facts`` the sentence was made
from, so that a caller speaking another language (the app's French page) can say the same thing in
its own words; callers without a sentence for a reason show the English one.
"""


class TalkingHeadError(Exception):
    """Base of all user-facing errors; the message says what to do."""

    reason = ""  # subclasses that stand for one situation name it here

    def __init__(self, message: str = "", *, reason: str = "", **facts):
        super().__init__(message)
        if reason:
            self.reason = reason
        self.facts = facts


class Note(str):
    """One sentence a user should know about a finished render (e.g. a fallback engine), with its reason."""

    reason: str
    facts: dict

    def __new__(cls, text: str, *, reason: str = "", **facts):
        note = super().__new__(cls, text)
        note.reason = reason
        note.facts = facts
        return note


class ImageError(TalkingHeadError):
    """The portrait image cannot be used."""


class ClipError(TalkingHeadError):
    """The driving clip cannot be used."""


class FaceNotFoundError(TalkingHeadError):
    """No usable face where one is needed."""


class SettingsError(TalkingHeadError):
    """A render setting out of its range (an API call's or a command line's number)."""

    reason = "bad_setting"


class GalleryError(TalkingHeadError):
    """A gallery id or manifest problem."""


class EngineUnavailableError(TalkingHeadError):
    """The requested engine cannot run here (missing weights, device or package)."""


class Cancelled(TalkingHeadError):
    """The caller cancelled the render; nothing was written."""

    reason = "cancelled"

    def __init__(self, message: str = "Rendering was cancelled; nothing was written."):
        super().__init__(message)


class CheckpointError(EngineUnavailableError):
    """A learned weights file is missing, incomplete, corrupt, unsafe or not what its spec says.

    ``reason`` is one of ``missing``, ``size``, ``sha256``, ``unreadable``, ``unsafe``, ``layout``;
    ``spec`` is the :class:`talking_head.checkpoints.FileSpec` concerned (or None).
    """

    def __init__(self, message: str, *, spec=None, reason: str = ""):
        super().__init__(message, reason=reason)
        self.spec = spec
