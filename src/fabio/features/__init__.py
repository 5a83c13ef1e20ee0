"""Order-flow features: volume profile, POC, value area, CVD, sessions, zones."""
