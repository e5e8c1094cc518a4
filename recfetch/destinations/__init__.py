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

import importlib
from typing import TYPE_CHECKING, Any

from recfetch.destinations.settings import StoreSettings

if TYPE_CHECKING:
    from recfetch.destinations.objectstore import (
        INSTALL_HINT,
        ObjectReaders,
        ObjectStore,
        Proof,
        StoreURL,
        is_store_url,
        split_object_url,
    )
    from recfetch.destinations.upload import ObjectUpload

_LAZY = {
    **dict.fromkeys(
        ("INSTALL_HINT", "ObjectReaders", "ObjectStore", "Proof", "StoreURL"), "objectstore"
    ),
    **dict.fromkeys(("is_store_url", "split_object_url"), "objectstore"),
    "ObjectUpload": "upload",
}
"""Names whose module is imported when first asked for: a pull into a folder needs only the settings."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
