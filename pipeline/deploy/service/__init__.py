"""The prediction service: `mlops serve --target NAME` and `mlops logs snapshot`.

The service follows `deploy/<target>.json` (the desired state in git) and serves the bundle it
names; it records every prediction in a rotated JSON-lines log that `mlops logs snapshot` turns
into immutable production windows for monitoring.

::

    settings.py   typed view of deploy.targets.<name>.serve; secrets (bearer token, log hash key)
                  read from the environment or a file and refused when weak or exposed
    releases.py   desired state (deploy/<target>.json), loading + verifying bundles, the watcher
                  thread and the one reference that is swapped atomically
    batching.py   adaptive micro-batching: one model thread scores concurrent requests together
    predlog.py    append-only JSON-lines logs written by a background thread, rotated into
                  immutable files (mode 600, retention by age); the index of request ids that
                  feedback is checked against
    redact.py     personal columns dropped or keyed-hashed before an entry is queued
    metrics.py    Prometheus metrics (one registry per app)
    http.py       size-limited body reading, JSON-only POSTs, strict JSON and Unicode parsing,
                  error responses, auth, rate limit
    app.py        the FastAPI application
    runner.py     uvicorn start-up for `mlops serve`
    snapshot.py   prediction log + feedback -> production windows

Heavy imports (FastAPI, pandas, scikit-learn) stay inside the modules that need them; nothing is
imported here, so `mlops --help` stays fast.
"""
