"""PACS integration: DICOM Structured Reports out, DICOMweb and DIMSE (C-STORE) in.

``sr`` builds and writes TID 1500 Measurement Reports, ``readback`` reads them back, ``gsps``
draws the boxes as a presentation state. ``vault`` de-identifies and seals what arrives (with
the key ring and salt the caller injects: this layer does not import ``serving``), and
restores the original identifiers only on results going back to the PACS. Everything
here needs the ``[pacs]`` extra (highdicom, dicomweb-client, pynetdicom); importing the package
without it raises :class:`~insightray.errors.MissingExtraError` with the install hint.
"""

from insightray.extras import import_extra

import_extra("highdicom", "pacs")
