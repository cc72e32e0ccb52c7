"""Rupali: a self-hostable AI image studio whose privacy policy is executable."""

__version__ = "0.1.0"
