"""The seed paper's own model: few-shot adversarial talking heads (Zakharov et al., ICCV 2019).

Networks (one file each): :mod:`.embedder`, :mod:`.generator`, :mod:`.discriminator`; the content
loss's feature networks :mod:`.vgg`; losses :mod:`.losses`; meta-learning :mod:`.train`; few-shot
fine-tuning :mod:`.finetune`; data :mod:`.data`; files and the Hub :mod:`.model` and :mod:`.specs`.
"""
from .config import FewShotConfig
from .model import TalkingHeadModel

__all__ = ["FewShotConfig", "TalkingHeadModel"]
