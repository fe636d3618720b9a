"""Payment-reminder and voice-collection bot for lenders."""

__version__ = "0.1.0"
