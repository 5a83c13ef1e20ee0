"""Fabio Valentini's setups as pure functions of a feature snapshot."""
