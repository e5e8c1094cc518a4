"""An S3-compatible bucket as the place recordings go (SPEC §3 "Destinations").

`ObjectStore` speaks to one ``s3://BUCKET/PREFIX`` through boto3 (any
S3-compatible server: AWS, MinIO, Ceph, SeaweedFS, GCS's XML API). It answers
"is this recording already here" from the object's user metadata (one HEAD, no
URL minted), opens an `ObjectUpload` for a new object, reads objects back for
`verify`, and keeps small state files (the `--incremental` watermark) under
``PREFIX/.recfetch/``.

Every store failure a user can fix (wrong or missing credentials, a missing
bucket, a key that may not write) becomes one `LocalIOError` (exit 10) naming
the store and the fix; the batch stops on it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfetch.destinations.settings import StoreSettings
from recfetch.destinations.spool import spool_dir
from recfetch.destinations.upload import ObjectUpload
from recfetch.errors import ConfigError, LocalIOError, RecfetchError, TransferError, UsageError
from recfetch.urls import is_loopback

SCHEMES = ("s3",)
OTHER_SCHEMES = ("gs", "az", "abfs", "abfss", "azure", "gcs", "r2")
INSTALL_HINT = "pip install 'recfetch[s3]'"
STATE_DIR = ".recfetch/"
READ_CHUNK = 1024 * 1024

_BAD_CREDENTIALS = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
})
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
PERMISSIONS = "s3:ListBucket, s3:GetObject, s3:PutObject, s3:AbortMultipartUpload and s3:DeleteObject"


def is_store_url(text: str) -> bool:
    """True for `s3://...` (and the other object-store schemes, which are refused with a fix)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES + OTHER_SCHEMES


@dataclass(frozen=True, slots=True)
class StoreURL:
    """``s3://BUCKET/PREFIX``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> StoreURL:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "s3":
            raise UsageError(
                f"-o {text}: only s3:// object stores are supported",
                hint="use s3://BUCKET/PREFIX; for Google Cloud Storage, its S3-compatible API works "
                "with HMAC keys and AWS_ENDPOINT_URL=https://storage.googleapis.com",
            )
        bucket, _, prefix = rest.partition("/")
        if not bucket or any(c in bucket for c in " \\?#"):
            raise UsageError(f"-o {text}: no bucket name", hint="write it as s3://BUCKET/PREFIX")
        prefix = "/".join(p for p in prefix.split("/") if p)
        if any(part in (".", "..") for part in prefix.split("/")):
            raise UsageError(f"-o {text}: '.' and '..' are not allowed in a key prefix")
        return cls(bucket, prefix + "/" if prefix else "")

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}/{self.prefix}"

    def __str__(self) -> str:
        return self.url()


@dataclass(frozen=True, slots=True)
class Proof:
    """What a HEAD says about an object: its length and the metadata recfetch wrote."""

    key: str
    length: int
    metadata: Mapping[str, str]

    @property
    def ref(self) -> str | None:
        return self.metadata.get("ref")

    @property
    def sha256(self) -> str | None:
        return self.metadata.get("sha256")

    def proves(self, ref: str, size: int | None, sha256: str | None = None) -> bool:
        """The object is this recording, written and verified by recfetch, with the expected size."""
        if self.ref != ref or not self.sha256 or self.length <= 0:
            return False
        if self.metadata.get("size") != str(self.length):
            return False
        if size is not None and size != self.length:
            return False
        return sha256 is None or sha256.lower() == self.sha256


def _load_boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ConfigError(
            "writing to an s3:// destination needs the boto3 package, which is not installed",
            hint=f"run: {INSTALL_HINT}",
        ) from None
    return boto3


class ObjectStore:
    """One bucket and prefix; thread-safe (one boto3 client shared by the --jobs threads)."""

    def __init__(self, url: StoreURL, settings: StoreSettings, *, jobs: int = 16,
                 spool: Path | None = None) -> None:
        self.url = url
        self.settings = settings
        self.jobs = jobs
        self._spool_base = spool
        """Where uploads spool their parts; None: ``STATE_DIR/spool`` (see `spool.spool_dir`)."""
        self._spool: Path | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    # -- the client ---------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        boto3 = _load_boto3()
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        s = self.settings
        config = Config(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=self.jobs + 4,
            # Flexible checksums (CRC trailers) are not understood by every S3-compatible
            # server; recfetch checks SHA-256 itself and SigV4 signs each payload.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if s.endpoint_url else {},
            # An endpoint on this machine is never reached through HTTP(S)_PROXY ({} = no proxy;
            # None lets botocore read the environment, as it should for a real store).
            proxies={} if s.endpoint_url and is_loopback(s.endpoint_url) else None,
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key,
                aws_session_token=s.session_token,
                region_name=s.region or None,
                profile_name=s.profile,
            )
            return session.client(
                "s3", endpoint_url=s.endpoint_url, config=config,
                region_name=s.region or session.region_name or "us-east-1",
            )
        except (BotoCoreError, ValueError) as exc:
            raise ConfigError(
                f"cannot configure the store {self.url}: {exc}",
                hint="check the AWS_* environment or [profiles.PROFILE.destination]",
            ) from None

    @property
    def spool(self) -> Path:
        """The private folder uploads spool their parts in, created on first use."""
        with self._lock:
            if self._spool is None:
                self._spool = spool_dir(self._spool_base)
            return self._spool

    # -- names --------------------------------------------------------------------

    def key(self, relative: str) -> str:
        """The object key for a name relative to the prefix (`/` separated)."""
        return self.url.prefix + relative.lstrip("/")

    def object_url(self, key: str) -> str:
        return self.url.url(key)

    def relative(self, key: str) -> str:
        return key.removeprefix(self.url.prefix)

    # -- checks and errors --------------------------------------------------------

    def check(self) -> None:
        """Fail fast (exit 10) unless the bucket exists and this key may list, read and write it.

        Writing is proven without leaving anything behind: a multipart upload is
        started under ``PREFIX/.recfetch/`` and aborted at once.
        """
        client = self.client
        try:
            client.list_objects_v2(Bucket=self.url.bucket, Prefix=self.url.prefix, MaxKeys=1)
            probe = self.key(STATE_DIR + "write-check")
            started = client.create_multipart_upload(Bucket=self.url.bucket, Key=probe)
            client.abort_multipart_upload(Bucket=self.url.bucket, Key=probe, UploadId=started["UploadId"])
        except Exception as exc:
            raise self.error(exc, "write to") from None

    def error(self, exc: BaseException, action: str, key: str | None = None) -> RecfetchError:
        """The one-line error a user reads for a failed store request."""
        if isinstance(exc, RecfetchError):
            return exc
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = self.object_url(key) if key else str(self.url)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ConfigError(
                f"no credentials for the store {self.url}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or aws_access_key_id and "
                "aws_secret_access_key in [profiles.PROFILE.destination]",
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return self._client_error(code, status, action, where)
        if isinstance(exc, EndpointConnectionError | ConnectionError):
            return LocalIOError(
                f"cannot reach the store for {self.url}: {exc}",
                hint="check AWS_ENDPOINT_URL (or aws_endpoint_url) and the network",
            )
        return TransferError(f"the store failed to {action} {where}: {exc}")

    def _client_error(self, code: str, status: int | None, action: str, where: str) -> RecfetchError:
        bucket = self.url.bucket
        if code in _BAD_CREDENTIALS:
            return LocalIOError(
                f"the store rejected the credentials for {self.url} ({code})",
                hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or aws_* in [profiles.PROFILE.destination])",
            )
        if code == "NoSuchBucket":
            return LocalIOError(
                f"bucket {bucket!r} does not exist (recfetch never creates buckets)",
                hint=f"create it, or fix -o s3://{bucket}/...",
            )
        if code in _DENIED or status == 403:
            return LocalIOError(
                f"the store refused to let this key {action} {where} ({code or status})",
                hint=f"grant {PERMISSIONS} on {self.url}, or use another key",
            )
        if code == "NoSuchUpload":
            return TransferError(f"the store lost the multipart upload for {where}", retryable=False)
        return TransferError(f"the store failed to {action} {where}: {code or status}")

    @staticmethod
    def _missing(exc: BaseException) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in _NOT_FOUND

    # -- objects ------------------------------------------------------------------

    def head(self, key: str) -> Proof | None:
        """The object's length and user metadata, or None when there is no object at ``key``."""
        try:
            answer = self.client.head_object(Bucket=self.url.bucket, Key=key)
        except Exception as exc:
            if self._missing(exc):
                return None
            raise self.error(exc, "read", key) from None
        metadata = {str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()}
        return Proof(key, int(answer.get("ContentLength") or 0), metadata)

    def upload(self, stage_id: str, *, size_hint: int | None = None,
               content_type: str | None = None) -> ObjectUpload:
        """A new upload; it becomes visible only through `ObjectUpload.commit`."""
        return ObjectUpload(self, self.key(f"{STATE_DIR}uploads/{stage_id}"), spool=self.spool,
                            size_hint=size_hint, content_type=content_type)

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; `FileNotFoundError` when there is no such object (so
        `verify` can call it missing), else `LocalIOError`/`TransferError`."""
        try:
            body = self.client.get_object(Bucket=self.url.bucket, Key=key)["Body"]
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(self.object_url(key)) from None
            raise self.error(exc, "read", key) from None
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except Exception as exc:
            raise self.error(exc, "read", key) from None
        finally:
            body.close()

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.url.bucket, Key=key)
        except Exception as exc:
            raise self.error(exc, "delete", key) from None

    def write_object(self, key: str, data: bytes, *, content_type: str) -> None:
        """A small object (a `--write-metadata` sidecar) in one PUT."""
        try:
            self.client.put_object(Bucket=self.url.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            raise self.error(exc, "write to", key) from None

    # -- small state files (--incremental watermark) ---------------------------------

    def read_state(self, name: str) -> bytes | None:
        """``PREFIX/.recfetch/NAME``, or None when it does not exist yet."""
        key = self.key(STATE_DIR + name)
        try:
            return b"".join(self.read(key))
        except FileNotFoundError:
            return None

    def write_state(self, name: str, data: bytes) -> None:
        """Replace ``PREFIX/.recfetch/NAME`` in one PUT (atomic: readers see old or new)."""
        self.write_object(self.key(STATE_DIR + name), data, content_type="application/json")


def split_object_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/KEY` -> (BUCKET, KEY)."""
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme.lower() != "s3" or not bucket or not key:
        raise UsageError(f"{url} is not an s3://BUCKET/KEY object URL")
    return bucket, key


class ObjectReaders:
    """Reads `s3://BUCKET/KEY` URLs (for `verify`): one `ObjectStore` per bucket, made on first use."""

    def __init__(self, settings: Callable[[], StoreSettings]) -> None:
        self._settings = settings
        self._resolved: StoreSettings | None = None
        self._stores: dict[str, ObjectStore] = {}

    def __call__(self, url: str) -> Iterator[bytes]:
        bucket, key = split_object_url(url)
        store = self._stores.get(bucket)
        if store is None:
            if self._resolved is None:
                self._resolved = self._settings()
            store = self._stores[bucket] = ObjectStore(StoreURL(bucket, ""), self._resolved, jobs=1)
        return store.read(key)
