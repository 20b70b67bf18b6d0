"""sdaanet: SD-AANet few-shot segmentation (self-distillation + supervised affinity attention)."""

from sdaanet.config import compose_config, register_resolvers

__version__ = "0.1.0"
__all__ = ["__version__", "compose_config"]

register_resolvers()
