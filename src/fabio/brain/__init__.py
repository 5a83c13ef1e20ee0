"""The deciding half of the agent: decision schema, context, brains, cadence."""
