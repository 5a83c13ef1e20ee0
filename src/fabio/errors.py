"""Errors that reach the user as a clear message, never as a traceback."""


class FabioError(Exception):
    """Base for every error the CLI reports as a plain message."""


class ConfigError(FabioError):
    """A setting in the environment or `.env` is missing or invalid."""


class DataError(FabioError):
    """A market data file cannot be read or makes no sense."""


class InstrumentError(FabioError):
    """A symbol or contract cannot be parsed or is not supported."""
