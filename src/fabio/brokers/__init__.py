"""Live trading venues: one folder per venue (config, http, hub, parsing, broker, feed)."""
