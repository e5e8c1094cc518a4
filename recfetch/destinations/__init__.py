"""Where recordings go: a local folder, or an object store (SPEC §3 "Destinations").

    objectstore.py  ObjectStore: one s3://BUCKET/PREFIX; HEAD proofs, reads, state files, errors
    upload.py       ObjectUpload: one recording streamed in, verified, then made visible
    spool.py        anonymous temporary files for parts, and the process-wide lane of sends
    settings.py     the store's AWS_* settings, environment over [profiles.P.destination]

`-o` takes either: `is_store_url` tells them apart, and everything that is not
an object-store URL is a folder handled by the download engine's .part files.
boto3 is imported only when an s3:// destination is used.
"""

from __future__ import annotations

from recfetch.destinations.objectstore import (
    INSTALL_HINT,
    ObjectReaders,
    ObjectStore,
    Proof,
    StoreURL,
    is_store_url,
    split_object_url,
)
from recfetch.destinations.settings import StoreSettings
from recfetch.destinations.upload import ObjectUpload

__all__ = [
    "INSTALL_HINT",
    "ObjectReaders",
    "ObjectStore",
    "ObjectUpload",
    "Proof",
    "StoreSettings",
    "StoreURL",
    "is_store_url",
    "split_object_url",
]
