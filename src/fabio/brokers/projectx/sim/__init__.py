"""`fabio gateway-sim`: a local ProjectX Gateway (REST, user and market hubs) over a replay.

`venue` matches orders against the replayed tape (market, limit, stop, Auto-OCO brackets,
partial fills); `server` speaks the gateway's REST endpoints and the SignalR JSON hub protocol
and injects faults; `replay` paces a data file (or the synthetic market) at a chosen speed.
"""
