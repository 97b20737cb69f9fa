"""The GAN architectures tganbench trains, and the model contract they follow (``base.py``)."""

from tganbench.models.base import Architecture, ModelSpec
from tganbench.models.dcgan import DCGAN, Discriminator, Generator, ModelConfig, build_models

__all__ = ["DCGAN", "Architecture", "Discriminator", "Generator", "ModelConfig", "ModelSpec", "build_models"]
