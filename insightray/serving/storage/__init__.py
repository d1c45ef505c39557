"""What the service keeps: the database, encrypted blobs, studies and pseudonyms.

- :mod:`~insightray.serving.storage.db`: the SQLAlchemy models, :class:`Database` and the
  Alembic migrations shipped with the package.
- :mod:`~insightray.serving.storage.crypto` and :mod:`~insightray.serving.storage.blobstore`:
  images and results encrypted at rest with AES-256-GCM, in a content-addressed store.
- :mod:`~insightray.serving.storage.studies`: ingest (de-identified, encrypted), look-up,
  listing and deletion of studies.
- :mod:`~insightray.serving.storage.pseudonyms`: the site's de-identification salt and the
  encrypted patient-ID -> pseudonym map.
"""
