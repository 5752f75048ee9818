"""The built-in model catalog, hardware tiers and pinned images, and the configuration loader."""

from slm_operator.catalog.loader import builtin_config, load_config, load_config_text

__all__ = ["builtin_config", "load_config", "load_config_text"]
