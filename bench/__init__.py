"""fleetcast's benchmark suite: ``make bench`` runs ``python -m bench``.

Measures the gateway against a reference Node.js socket.io v4 server in the
same run on the same machine (docs/performance.md says how and what each
figure means). Not part of ``make test``: speed lives here, never in timed
asserts.
"""
