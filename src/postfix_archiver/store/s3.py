"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW) through boto3. See
``BlobStore`` for the contract, ``s3_url`` for the URL and ``s3_pack`` for the layout.

Layout under ``PREFIX``:

- ``packs/<name>``: the small blobs of one ``put_many`` (those with the same lock hour), with
  their index at the end. A batch costs one PUT, not one per blob.
- ``blobs/<kind>/<name>``: a blob larger than ``pack_limit``, as an object of its own, in
  parts of ``multipart`` bytes when it is larger than that.

Durable means S3 answered the PUT after checking the checksum sent with it (Content-MD5, and
SHA-256 as ``x-amz-checksum-sha256``, which S3 also hands back and is compared here).
botocore retries with backoff (``attempts``, ``timeout``); a store still unreachable is a
``StoreError``, which the ways in turn into 451 / exit 75: the mail stays queued.

Object Lock: when the bucket has it, a blob whose message has a retention date is written
locked (``lock_mode``, COMPLIANCE by default) until that date: nobody, not even the bucket's
owner, can delete it before. A pack is locked until the latest date of its blobs; blobs are
grouped into packs by the hour their retention ends, so a pack's lock outlives its blobs'
retention by an hour at most. Deleting a locked blob is refused and reported.

Which pack holds a key is known from the packs' indexes, read once per process (one LIST per
1,000 packs and one ranged GET per pack) and again when a key is not found.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from ..errors import StoreError
from . import check_key
from .s3_pack import TAIL_READ, TRAILER_SIZE, PackIndex, build, index_length, pack_name, parse_index
from .s3_url import S3Location

log = logging.getLogger("postfix_archiver.store")
T = TypeVar("T")

# a lock date closer than this is not set: S3 refuses a date in the past, and the clocks of
# this host and the store's may differ by this much
LOCK_MARGIN = timedelta(minutes=5)
# the latest lock date set: S3 may refuse dates further out (AWS caps default retention at 100
# years), and a retention that long ("9999y", clamped to the year 9999) is forever in practice
LOCK_LONGEST = timedelta(days=100 * 365)
# a key not found by size/exists re-reads the pack list at most this often (the ingest path
# asks for every new attachment; another host's new packs show up within this time)
REFRESH_EVERY = 2.0


class S3Store:
    """See the module docstring."""

    def __init__(self, location: S3Location, *, readonly: bool = False) -> None:
        self.location = location
        self.url = location.url
        self.readonly = readonly
        self._client: Any = _client(location)
        self._lock = threading.Lock()  # guards the maps below
        self._refresh_lock = threading.Lock()  # one listing at a time
        self._packs: dict[str, PackIndex] = {}  # pack name -> its index
        self._holders: dict[str, set[str]] = {}  # key -> packs holding a copy
        self._loaded = False
        self._refreshed = 0.0
        self._object_lock: bool | None = None  # the bucket has Object Lock (asked once)
        self._damaged: set[str] = set()  # packs whose index cannot be read (logged once)

    # -- names ---------------------------------------------------------------------------------

    def _pack_key(self, name: str) -> str:
        return f"{self.location.prefix}packs/{name}"

    def _blob_key(self, key: str) -> str:
        return f"{self.location.prefix}blobs/{key}"

    # -- writing -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        retain_until: Mapping[str, datetime] | None = None,
    ) -> None:
        """Small blobs packed per lock hour (one PUT each), large ones one object each."""
        for key, _data in items:
            check_key(key)  # every key is checked before anything is written
        if not items:
            return
        if self.readonly:
            raise StoreError(f"the S3 store {self.url} is open read-only")
        locks = retain_until or {}
        groups: dict[datetime | None, list[tuple[str, bytes]]] = {}
        for key, data in items:
            until = self._lock_date(locks.get(key))
            if len(data) > self.location.pack_limit:
                self._put_object(self._blob_key(key), data, until)
            else:
                hour = until.replace(minute=0, second=0, microsecond=0) if until else None
                groups.setdefault(hour, []).append((key, data))
        for group in groups.values():
            dates = [d for d in (self._lock_date(locks.get(k)) for k, _ in group) if d]
            self._put_pack(group, max(dates) if dates else None)

    def _lock_date(self, until: datetime | None) -> datetime | None:
        """The date to lock a blob until, or None: no date, or one too close to bother (a
        message imported after its retention ended), or a bucket without Object Lock."""
        if until is None or until.tzinfo is None:
            return None
        now = datetime.now(UTC)
        if until <= now + LOCK_MARGIN or not self._bucket_locks():
            return None
        return min(until.astimezone(UTC), now + LOCK_LONGEST)

    def _bucket_locks(self) -> bool:
        if self._object_lock is None:
            try:
                answer = self._call(
                    "read the Object Lock setting of",
                    self._client.get_object_lock_configuration,
                    Bucket=self.location.bucket,
                )
                config = answer.get("ObjectLockConfiguration", {})
                self._object_lock = config.get("ObjectLockEnabled") == "Enabled"
            except _NoLockConfig:
                self._object_lock = False
        return self._object_lock

    def _put_pack(self, items: list[tuple[str, bytes]], until: datetime | None) -> None:
        name = pack_name()
        body, index = build(items, until)
        self._put_object(self._pack_key(name), body, until)
        with self._lock:
            self._add_pack(name, index)

    def _put_object(self, object_key: str, data: bytes, until: datetime | None) -> None:
        lock: dict[str, Any] = {}
        if until is not None:
            lock = {"ObjectLockMode": self.location.lock_mode, "ObjectLockRetainUntilDate": until}
        if len(data) > self.location.multipart:
            self._put_multipart(object_key, data, lock)
            return
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        answer = self._call(
            f"write {object_key} to",
            self._client.put_object,
            Bucket=self.location.bucket,
            Key=object_key,
            Body=data,
            ContentMD5=md5,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha,
            **lock,
        )
        echoed = answer.get("ChecksumSHA256")
        if echoed is not None and echoed != sha:
            raise StoreError(
                f"S3 store {self.url}: {object_key} was stored with checksum {echoed}, "
                f"not the {sha} sent: the store or a proxy on the way changed the bytes"
            )

    def _put_multipart(self, object_key: str, data: bytes, lock: dict[str, Any]) -> None:
        # s3transfer sends a SHA-256 per part, which S3 checks before it takes the part
        size = self.location.multipart
        config = TransferConfig(
            multipart_threshold=size, multipart_chunksize=size, use_threads=False
        )
        self._call(
            f"write {object_key} (in parts) to",
            self._client.upload_fileobj,
            io.BytesIO(data),
            self.location.bucket,
            object_key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", **lock},
            Config=config,
        )
        head = self._call(
            f"check {object_key} in",
            self._client.head_object,
            Bucket=self.location.bucket,
            Key=object_key,
        )
        if int(head["ContentLength"]) != len(data):
            raise StoreError(
                f"S3 store {self.url}: {object_key} holds {head['ContentLength']} bytes after "
                f"its upload, not {len(data)}"
            )

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        check_key(key)
        for attempt in range(2):
            self._ensure_loaded()
            found = self._where(key)
            if found is not None:
                name, offset, length = found
                if length == 0:
                    return b""
                try:
                    answer = self._call(
                        f"read {key} from",
                        self._client.get_object,
                        Bucket=self.location.bucket,
                        Key=self._pack_key(name),
                        Range=f"bytes={offset}-{offset + length - 1}",
                    )
                    data: bytes = self._call(f"read {key} from", answer["Body"].read)
                except _Missing:
                    # the pack went (another process rewrote it): read the list again
                    self._refresh()
                    continue
                if len(data) != length:
                    raise StoreError(f"S3 store {self.url}: short read of {key} from pack {name}")
                return data
            try:
                answer = self._call(
                    f"read {key} from",
                    self._client.get_object,
                    Bucket=self.location.bucket,
                    Key=self._blob_key(key),
                )
                body: bytes = self._call(f"read {key} from", answer["Body"].read)
                return body
            except _Missing:
                if attempt == 0:
                    self._refresh()  # perhaps another process packed it since
        raise KeyError(key)

    def size(self, key: str) -> int:
        check_key(key)
        self._ensure_loaded()
        found = self._where(key)
        if found is not None:
            return found[2]
        try:
            head = self._call(
                f"look up {key} in",
                self._client.head_object,
                Bucket=self.location.bucket,
                Key=self._blob_key(key),
            )
            return int(head["ContentLength"])
        except _Missing:
            pass
        if time.monotonic() - self._refreshed > REFRESH_EVERY:
            self._refresh()
            found = self._where(key)
            if found is not None:
                return found[2]
        raise KeyError(key)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except KeyError:
            return False
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        self._refresh()
        with self._lock:
            packed = {k for k in self._holders if k.startswith(prefix)}
        yield from sorted(packed)
        base = self._blob_key("")
        for obj in self._list(self._blob_key(prefix)):
            key = obj["Key"][len(base) :]
            if key not in packed:
                yield key

    # -- deleting ------------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Sequence[str]) -> None:
        """Each key's object (every version of it) and its copies in packs: a pack keeping
        other blobs is written again without these, then the old one deleted. Locked ones
        are left as they are; the others are deleted, then a ``StoreError`` says which were
        refused (the removal keeps them pending and tries again next time)."""
        for key in keys:
            check_key(key)
        if not keys:
            return
        if self.readonly:
            raise StoreError(f"the S3 store {self.url} is open read-only")
        self._refresh()
        refused: list[str] = []
        gone = set(keys)
        with self._lock:
            packs = sorted({p for k in gone for p in self._holders.get(k, ())})
            unpacked = [k for k in keys if k not in self._holders]
        for name in packs:
            refused += self._drop_from_pack(name, gone)
        for key in unpacked:  # a key in a pack was small: it has no object of its own
            refused += self._delete_versions(self._blob_key(key))
        if refused:
            raise StoreError(
                f"S3 store {self.url}: Object Lock kept {len(refused)} object(s) from being "
                f"deleted ({', '.join(refused[:3])}{', ...' if len(refused) > 3 else ''}): their "
                "retention has not ended; they stay, and the next purge or erase tries again"
            )

    def _drop_from_pack(self, name: str, gone: set[str]) -> list[str]:
        with self._lock:
            index = self._packs.get(name)
        if index is None:
            return []
        now = datetime.now(UTC)
        if index.retain_until is not None and index.retain_until > now and self._bucket_locks():
            return [f"{self._pack_key(name)} (locked until {index.retain_until.isoformat()})"]
        kept = [k for k in index.entries if k not in gone]
        if kept:
            whole = self._call(
                f"read pack {name} from",
                self._client.get_object,
                Bucket=self.location.bucket,
                Key=self._pack_key(name),
            )
            body: bytes = self._call(f"read pack {name} from", whole["Body"].read)
            items = [(k, body[o : o + n]) for k, (o, n) in index.entries.items() if k in kept]
            until = index.retain_until if index.retain_until and index.retain_until > now else None
            self._put_pack(items, until)
        refused = self._delete_versions(self._pack_key(name))
        if not refused:
            with self._lock:
                self._drop_pack(name)
        return refused

    def _delete_versions(self, object_key: str) -> list[str]:
        """Every version of ``object_key`` (and delete marker) deleted: on a versioned bucket
        (Object Lock needs versioning) a plain DELETE only hides the bytes."""
        versions: list[dict[str, str]] = []
        pages = self._call(
            f"list versions of {object_key} in",
            lambda: list(
                self._client.get_paginator("list_object_versions").paginate(
                    Bucket=self.location.bucket, Prefix=object_key
                )
            ),
        )
        for page in pages:
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if entry["Key"] == object_key:
                    versions.append({"Key": object_key, "VersionId": entry["VersionId"]})
        refused: list[str] = []
        for start in range(0, len(versions), 1000):
            answer = self._call(
                f"delete {object_key} from",
                self._client.delete_objects,
                Bucket=self.location.bucket,
                Delete={"Objects": versions[start : start + 1000], "Quiet": True},
            )
            for error in answer.get("Errors", []):
                refused.append(f"{error.get('Key')} ({error.get('Code')})")
        return refused

    def truncate_logs(self) -> list[str]:
        return []  # no write-ahead log of ours: S3 keeps no deleted version once deleted

    def close(self) -> None:
        pass  # boto3 clients hold pooled connections only; they go with the process

    # -- the pack index ------------------------------------------------------------------------

    def _where(self, key: str) -> tuple[str, int, int] | None:
        """The latest pack holding ``key``, with the blob's offset and length."""
        with self._lock:
            holders = self._holders.get(key)
            if not holders:
                return None
            name = max(holders)  # names sort by the time they were written
            offset, length = self._packs[name].entries[key]
            return name, offset, length

    def _add_pack(self, name: str, index: PackIndex) -> None:
        self._packs[name] = index
        for key in index.entries:
            self._holders.setdefault(key, set()).add(name)

    def _drop_pack(self, name: str) -> None:
        index = self._packs.pop(name, None)
        for key in index.entries if index else ():
            holders = self._holders.get(key)
            if holders is not None:
                holders.discard(name)
                if not holders:
                    del self._holders[key]

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._refresh()

    def _refresh(self) -> None:
        """Read the list of packs again: the indexes of new ones, and forget the gone."""
        with self._refresh_lock:
            listed = [obj["Key"].rsplit("/", 1)[1] for obj in self._list(self._pack_key(""))]
            with self._lock:
                known = set(self._packs)
            fresh = {
                name: self._read_index(name)
                for name in listed
                if name not in known and name not in self._damaged
            }
            with self._lock:
                for name in known - set(listed):
                    self._drop_pack(name)
                for name, index in fresh.items():
                    if index is not None:
                        self._add_pack(name, index)
                self._loaded = True
                self._refreshed = time.monotonic()

    def _read_index(self, name: str) -> PackIndex | None:
        """A pack's index: one ranged GET of its end (two if the index is longer than that);
        None if the pack went meanwhile."""
        bucket, key = self.location.bucket, self._pack_key(name)
        try:
            answer = self._call(
                f"read pack {name} from",
                self._client.get_object,
                Bucket=bucket,
                Key=key,
                Range=f"bytes=-{TAIL_READ}",
            )
            tail: bytes = self._call(f"read pack {name} from", answer["Body"].read)
            length = _checked(index_length, tail, name)
            if length + TRAILER_SIZE > len(tail):
                total = int(answer.get("ContentRange", "/0").rsplit("/", 1)[1])
                start = total - length - TRAILER_SIZE
                if start < 0:
                    raise _Damaged(f"S3 pack {name} is damaged (its index would start at {start})")
                answer = self._call(
                    f"read pack {name} from",
                    self._client.get_object,
                    Bucket=bucket,
                    Key=key,
                    Range=f"bytes={start}-{total - 1}",
                )
                tail = self._call(f"read pack {name} from", answer["Body"].read)
            index = _checked(parse_index, tail[-TRAILER_SIZE - length : -TRAILER_SIZE], name)
        except _Missing:
            return None
        except _Damaged as exc:
            # one bad object (a write cut short by a crashed host, something not ours) must
            # not make the others unreadable: its blobs read as missing, which verify reports
            log.error("S3 store %s: %s: skipped", self.url, exc)
            self._damaged.add(name)
            return None
        return index

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        iterator = iter(pages)
        while True:
            page = self._call("list", lambda: next(iterator, None))
            if page is None:
                return
            yield from page.get("Contents", [])

    # -- errors --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` with boto's errors as ``StoreError`` naming the fix (``_Missing`` for an
        absent object). Never a credential in the message: botocore's own texts name at most
        the key id's presence, and ours name the bucket and endpoint."""
        where = f"the S3 store {self.url}"
        if self.location.endpoint:
            where += f" at {self.location.endpoint}"
        try:
            return fn(*args, **kwargs)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise _Missing(what) from None
            if code == "ObjectLockConfigurationNotFoundError":
                raise _NoLockConfig(what) from None
            raise StoreError(
                f"cannot {what} {where}: {code}: {_hint(code, self.location)}"
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise StoreError(
                f"cannot {what} {where}: no AWS credentials: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or an instance role"
            ) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
        ) as exc:
            raise StoreError(
                f"cannot {what} {where}: the store is unreachable after "
                f"{self.location.attempts} attempts ({type(exc).__name__}); check that it is "
                "up and the endpoint is right"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(f"cannot {what} {where}: {exc}") from None


class _Missing(KeyError):
    """No such object (S3's 404), inside this module only."""


class _Damaged(StoreError):
    """A pack whose trailer or index cannot be read."""


def _checked(parse: Callable[[bytes, str], T], data: bytes, name: str) -> T:
    try:
        return parse(data, name)
    except StoreError as exc:
        raise _Damaged(str(exc)) from None


class _NoLockConfig(Exception):
    """The bucket has no Object Lock configuration."""


def _hint(code: str, location: S3Location) -> str:
    if code == "NoSuchBucket":
        return (
            f"create the bucket {location.bucket} (with Object Lock enabled, to lock blobs "
            "until their retention ends), or correct the store URL"
        )
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return "check the AWS credentials and that they may read, write and list the bucket"
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        return "the bytes changed on the way (a proxy?): nothing was stored, try again"
    if code in ("SlowDown", "ServiceUnavailable", "503", "InternalError", "500"):
        return "the store is overloaded or failing: Postfix retries the mail later"
    return "see the store's logs"


def _client(location: S3Location) -> Any:
    config = botocore.config.Config(
        retries={"total_max_attempts": location.attempts, "mode": "standard"},
        connect_timeout=location.timeout,
        read_timeout=location.timeout,
        # path style on other stores (MinIO, Ceph RGW and moto need no DNS per bucket)
        s3={"addressing_style": "path" if location.endpoint else "auto"},
        # we send our own SHA-256 and Content-MD5; botocore's default CRC32 since 1.36 is
        # refused by some S3-compatible stores
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    global _session
    with _session_lock:  # a session is not thread-safe; its clients are
        if _session is None:
            # one per process: it reads the service's model once (a second each, otherwise)
            _session = boto3.session.Session()
        return _session.client(
            "s3", endpoint_url=location.endpoint, region_name=location.region, config=config
        )


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()
