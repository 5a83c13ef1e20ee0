"""Fabio: a self-learning order-flow trading agent for CME index futures."""

__version__ = "0.1.0"
