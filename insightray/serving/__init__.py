"""The clinical web service: HTTP API, users, roles, audit trail and encrypted storage.

This is the only layer that knows HTTP, users, the audit trail or the database. It is
grouped by concern:

- :mod:`~insightray.serving.security`: passwords, tokens, roles, users and API keys, rate
  limits and the hash-chained audit trail.
- :mod:`~insightray.serving.storage`: the database (SQLAlchemy models and the Alembic
  migrations shipped with the package), the encryption key ring, the content-addressed
  encrypted blob store, studies and the pseudonym map.
- :mod:`~insightray.serving.hosting`: the model host and its runners, dynamic batching,
  the result cache, metrics, the rollout registry (versions, stages, traffic) and analysis.
- :mod:`~insightray.serving.routes`: one router per resource.
- :mod:`~insightray.serving.app`, :mod:`~insightray.serving.settings`,
  :mod:`~insightray.serving.deps` (every request dependency and its ``Annotated`` alias) and
  :mod:`~insightray.serving.handlers` (errors to JSON).

Pixels and DICOM headers are read by :mod:`insightray.imaging` only (de-identification
included, :mod:`insightray.imaging.deid`); this package never imports pydicom.

Import from the submodules; this package imports nothing so that ``import
insightray.serving`` stays cheap.
"""
