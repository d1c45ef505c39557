"""PACS integration: DICOM Structured Reports out, DICOMweb and DIMSE (C-STORE) in.

``sr`` builds and writes TID 1500 Measurement Reports, ``readback`` reads them back. Everything
here needs the ``[pacs]`` extra (highdicom, dicomweb-client, pynetdicom); importing the package
without it raises :class:`~insightray.errors.MissingExtraError` with the install hint.
"""

from insightray.extras import import_extra

import_extra("highdicom", "pacs")
