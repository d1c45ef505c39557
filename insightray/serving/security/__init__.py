"""Who may do what, and the record of what they did.

- :mod:`~insightray.serving.security.passwords`: argon2id password hashes.
- :mod:`~insightray.serving.security.tokens`: signed, expiring JWTs.
- :mod:`~insightray.serving.security.roles`: roles and their permissions.
- :mod:`~insightray.serving.security.users`: users and API keys.
- :mod:`~insightray.serving.security.ratelimit`: per-user token buckets, in memory or Redis.
- :mod:`~insightray.serving.security.audit`: the hash-chained audit trail.
"""
