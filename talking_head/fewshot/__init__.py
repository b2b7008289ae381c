"""The seed paper's own model: few-shot adversarial talking heads (Zakharov et al., ICCV 2019).

Networks (one file each): :mod:`.embedder`, :mod:`.generator`, :mod:`.discriminator`; the content
loss's feature networks :mod:`.vgg`; losses :mod:`.losses`; meta-learning :mod:`.train`; few-shot
fine-tuning :mod:`.finetune`; data :mod:`.data`; files and the Hub :mod:`.model` and :mod:`.specs`.
"""
from .config import FewShotConfig

__all__ = ["FewShotConfig", "TalkingHeadModel"]


def __getattr__(name: str):
    # The model needs torch (a second or more to import); asking whether a checkpoint is configured
    # (the engine registry does, for every render) must not pay for it.
    if name == "TalkingHeadModel":
        from .model import TalkingHeadModel
        return TalkingHeadModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
