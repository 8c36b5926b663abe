"""The S3 store's URL: ``s3://BUCKET/PREFIX?endpoint=...&region=...``, parsed and checked once.

Everything the store needs besides credentials is in the URL, so the one ``store`` setting
says where the blobs are (the ``[s3]`` config table fills in what the URL leaves out).
Credentials never are: they come from the standard AWS chain (environment, ``~/.aws``,
instance roles), and a URL that carries some is refused without repeating them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..errors import StoreError

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
# blobs up to this size (as stored) are packed with the rest of their batch into one object
PACK_LIMIT = 256 * 1024
# larger blobs go up in parts of this size (S3's smallest part is 5 MiB)
MULTIPART = 16 << 20
_MIN_PART = 5 << 20
# S3's rules for bucket names (3-63 lower-case letters, digits, dots and hyphens)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", re.ASCII)
_PARAMS = ("endpoint", "region", "lock_mode", "pack_limit", "multipart", "attempts", "timeout")


@dataclass(frozen=True)
class S3Location:
    """Where and how the S3 store keeps its objects."""

    bucket: str
    prefix: str  # "" or ends with "/"
    endpoint: str | None = None  # None: AWS S3 itself
    region: str | None = None  # None: from the AWS chain (AWS_REGION, ~/.aws/config)
    lock_mode: str = "COMPLIANCE"  # used when the bucket has Object Lock
    pack_limit: int = PACK_LIMIT
    multipart: int = MULTIPART
    attempts: int = 4  # botocore's retries with backoff, the first try included
    timeout: float = 10.0  # connect and read timeout per request, seconds

    @property
    def url(self) -> str:
        """The URL without its options: what the store is called in messages."""
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str, defaults: dict[str, str] | None = None) -> S3Location:
    """The location named by ``url``; ``defaults`` (the ``[s3]`` config table) for options
    the URL does not give. ``StoreError`` naming the fix for anything wrong."""
    if not url.startswith("s3://"):
        raise StoreError(f"not an S3 URL: {url[:100]!r}")
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise StoreError(f"store URL: cannot parse it ({exc}): use s3://BUCKET/PREFIX") from None
    if "@" in parts.netloc:
        # never echo what is before the '@': it may be a secret key
        raise StoreError(
            "store URL: credentials do not belong in the URL: give them through the AWS "
            "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance role)"
        )
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(
            f"store URL: {bucket[:70]!r} is not an S3 bucket name (3-63 lower-case letters, "
            "digits, dots and hyphens): use s3://BUCKET/PREFIX"
        )
    prefix = parts.path.strip("/")
    if any(c < " " or c == "\x7f" for c in prefix) or "//" in prefix or len(prefix) > 512:
        raise StoreError(f"store URL: {prefix[:70]!r} is not a usable key prefix")
    options = dict(defaults or {})
    for name, value in query:
        if name not in _PARAMS:
            raise StoreError(
                f"store URL: unknown option {name[:40]!r}: use one of {', '.join(_PARAMS)}"
            )
        options[name] = value
    lock_mode = options.get("lock_mode", "COMPLIANCE").upper()
    if lock_mode not in LOCK_MODES:
        raise StoreError(
            f"store URL: lock_mode {lock_mode[:40]!r}: use COMPLIANCE (nobody can delete "
            "before the date) or GOVERNANCE (users with s3:BypassGovernanceRetention can)"
        )
    endpoint = options.get("endpoint") or None
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/?#]+/?", endpoint, re.ASCII):
        raise StoreError(
            f"store URL: endpoint {endpoint[:80]!r}: give http(s)://HOST[:PORT], "
            "e.g. endpoint=https://minio.example.com:9000"
        )
    return S3Location(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=options.get("region") or None,
        lock_mode=lock_mode,
        pack_limit=_number(options, "pack_limit", PACK_LIMIT, -1, 1 << 30),
        multipart=_number(options, "multipart", MULTIPART, _MIN_PART, 5 << 30),
        attempts=_number(options, "attempts", 4, 1, 20),
        timeout=float(_number(options, "timeout", 10, 1, 600)),
    )


def _number(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = options.get(name)
    if text is None:
        return default
    # ASCII digits only: int() would take Arabic-Indic digits and "1_000"
    if not re.fullmatch(r"-?[0-9]{1,12}", text, re.ASCII) or not low <= int(text) <= high:
        raise StoreError(
            f"store URL: {name}={text[:40]!r}: give a whole number from {low} to {high}"
        )
    return int(text)
