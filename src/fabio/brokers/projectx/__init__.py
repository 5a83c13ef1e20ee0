"""The ProjectX Gateway venue (TopstepX and other firm-branded hosts).

`config` (hosts and credentials), `http` (REST over httpx, rate limited, envelope checked),
`hub` (SignalR user and market hubs under our own supervisor), `parsing` (wire payloads to
venue records, pure), `broker` (the `Broker` port), `feed` (the `MarketFeed` port),
`reconcile` (venue state against the ledger), `tape` (daily Parquet of every trade and quote),
and `sim` (a local ProjectX simulator the tests and users rehearse against).
"""
