"""`omldeploy dashboard`: a read-only web page over the same data as `fleet status`.

snapshot.py keeps the last fleet survey (refreshed in the background) and the recent operations from the
tenants' ledgers; app.py serves them as plain server-rendered HTML (Flask, Jinja autoescaping, no
JavaScript) behind an optional token. Nothing here writes to a tenant, a host or a ledger.
"""
