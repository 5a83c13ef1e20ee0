"""The web dashboard: FastAPI + Socket.IO over the agents' journals and event bus."""
