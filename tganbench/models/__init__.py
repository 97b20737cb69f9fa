"""The GAN architectures tganbench trains."""

from tganbench.models.dcgan import Discriminator, Generator, ModelConfig, build_models

__all__ = ["Discriminator", "Generator", "ModelConfig", "build_models"]
