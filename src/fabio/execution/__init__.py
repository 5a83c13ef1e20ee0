"""Execution: strategy book, risk engine, simulated broker, the execution engine."""
