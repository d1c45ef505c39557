"""The clinical web service: HTTP API, users, roles, audit trail and encrypted storage.

This is the only layer that knows HTTP, users, the audit trail or the database. Its
foundations are small modules used by the app:

- :mod:`~insightray.serving.settings`: :class:`ServeSettings`, read from the environment.
- :mod:`~insightray.serving.db`: the SQLAlchemy models, :class:`Database` and the Alembic
  migrations shipped with the package.
- :mod:`~insightray.serving.passwords`, :mod:`~insightray.serving.tokens`,
  :mod:`~insightray.serving.roles`, :mod:`~insightray.serving.users`: who may do what.
- :mod:`~insightray.serving.crypto` and :mod:`~insightray.serving.blobstore`: images and
  results encrypted at rest with AES-256-GCM, in a content-addressed store.
- :mod:`~insightray.serving.deid`: DICOM de-identification on ingest (PS3.15 Basic Profile).
- :mod:`~insightray.serving.audit`: the hash-chained audit trail.
- :mod:`~insightray.serving.ratelimit`: per-user token buckets, in memory or in Redis.

Import from the submodules; this package imports nothing so that ``import
insightray.serving`` stays cheap.
"""
