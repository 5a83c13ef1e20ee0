"""Backtests: the agent over historical or synthetic data, as fast as it can go."""
