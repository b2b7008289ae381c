"""Living Portraits: make portrait paintings perform a driving clip.

The one entry point every caller uses is :func:`animate`.
"""
__version__ = "0.1.0"

from .errors import TalkingHeadError  # noqa: E402


def animate(*args, **kwargs):
    """See :func:`talking_head.pipeline.animate`."""
    from .pipeline import animate as _animate
    return _animate(*args, **kwargs)


__all__ = ["animate", "TalkingHeadError", "__version__"]
