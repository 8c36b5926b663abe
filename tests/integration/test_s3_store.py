"""The S3 store against a real S3 server (moto_server on 127.0.0.1): its layout (packs),
checksums, multipart uploads, Object Lock, secrets kept out of logs, and a store that goes
down mid-run. The ``BlobStore`` contract over S3 runs in tests/unit/store/test_store_contract.py.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.s3_helpers import S3, SECRET_KEY, MotoServer

from postfix_archiver.errors import StoreError
from postfix_archiver.store import open_store
from postfix_archiver.store.s3 import S3Store
from postfix_archiver.store.s3_url import parse_s3_url

pytestmark = [pytest.mark.integration]

SHA = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(40)]


def objects(s3: S3, bucket: str, prefix: str) -> list[dict[str, Any]]:
    answer = s3.server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return list(answer.get("Contents", []))


@pytest.fixture
def store(moto_s3: S3) -> Iterator[S3Store]:
    s = open_store(moto_s3.url("layout"))
    assert isinstance(s, S3Store)
    yield s
    s.delete_many(list(s.keys()))


class TestLayout:
    def test_a_batch_of_small_blobs_is_one_object(self, moto_s3: S3, store: S3Store) -> None:
        store.put_many([(f"p/{SHA[i]}", f"part {i}".encode() * 50) for i in range(20)])
        listed = objects(moto_s3, moto_s3.bucket, "layout/")
        assert [o["Key"].rsplit("/", 1)[0] for o in listed] == ["layout/packs"]
        # another process (a fresh store) finds every blob from the pack's index
        other = open_store(moto_s3.url("layout"))
        assert other.get(f"p/{SHA[7]}") == b"part 7" * 50
        assert other.size(f"p/{SHA[19]}") == len(b"part 19" * 50)
        assert sorted(other.keys("p/")) == sorted(f"p/{SHA[i]}" for i in range(20))

    def test_deleting_some_blobs_of_a_pack_rewrites_it(self, moto_s3: S3, store: S3Store) -> None:
        store.put_many([(f"m/{SHA[i]}", bytes([i]) * 1000) for i in range(5)])
        other = open_store(moto_s3.url("layout"))
        assert other.get(f"m/{SHA[1]}") == bytes([1]) * 1000  # it knows the old pack
        store.delete_many([f"m/{SHA[0]}", f"m/{SHA[3]}"])
        assert len(objects(moto_s3, moto_s3.bucket, "layout/packs/")) == 1
        # the other process reads the survivors from the new pack, and not the deleted
        assert other.get(f"m/{SHA[4]}") == bytes([4]) * 1000
        with pytest.raises(KeyError):
            other.get(f"m/{SHA[3]}")
        assert sorted(other.keys()) == sorted(f"m/{SHA[i]}" for i in (1, 2, 4))
        # nothing of the deleted bytes is left in any version of any object
        client = moto_s3.server.client()
        versions = client.list_object_versions(Bucket=moto_s3.bucket, Prefix="layout/")
        for v in versions.get("Versions", []):
            body = client.get_object(Bucket=moto_s3.bucket, Key=v["Key"], VersionId=v["VersionId"])[
                "Body"
            ].read()
            assert bytes([3]) * 1000 not in body

    def test_large_blobs_go_up_in_parts_with_checksums(self, moto_s3: S3) -> None:
        store = open_store(moto_s3.url("multi", multipart=5 << 20))
        big = os.urandom((11 << 20) + 5)
        store.put(f"p/{SHA[0]}", big)
        [listed] = objects(moto_s3, moto_s3.bucket, "multi/")
        assert listed["Key"] == f"multi/blobs/p/{SHA[0]}"
        assert listed["ETag"].strip('"').endswith("-3")  # three parts
        assert store.get(f"p/{SHA[0]}") == big
        store.delete(f"p/{SHA[0]}")

    def test_each_upload_carries_its_sha256(self, moto_s3: S3, store: S3Store) -> None:
        """The checksum goes with the upload, for the store to check (AWS S3 and MinIO
        refuse bytes that do not match it; moto records it without checking: README)."""
        store.put(f"m/{SHA[0]}", b"the real bytes")
        [pack] = objects(moto_s3, moto_s3.bucket, "layout/packs/")
        client = moto_s3.server.client()
        head = client.head_object(Bucket=moto_s3.bucket, Key=pack["Key"], ChecksumMode="ENABLED")
        body = client.get_object(Bucket=moto_s3.bucket, Key=pack["Key"])["Body"].read()
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # Content-MD5 too

    @pytest.mark.parametrize(
        "junk",
        [
            b"",
            b"not a pack at all",
            b"x" * 100 + b"\xff" * 8 + b"PFAPACK1",  # an index longer than the object
            b'{"v":1,"retain_until":null,"blobs":[["m/x",-5,3]]}'
            + (48).to_bytes(8, "big")
            + b"PFAPACK1",
            b"\x80\xfe{" + (3).to_bytes(8, "big") + b"PFAPACK1",  # 8-bit bytes, not JSON
        ],
    )
    def test_a_damaged_pack_does_not_hide_the_others(
        self, moto_s3: S3, store: S3Store, junk: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        store.put(f"m/{SHA[0]}", b"fine")
        moto_s3.server.client().put_object(
            Bucket=moto_s3.bucket, Key="layout/packs/00000000000000000001-junk", Body=junk
        )
        other = open_store(moto_s3.url("layout"))
        assert other.get(f"m/{SHA[0]}") == b"fine"
        assert list(other.keys()) == [f"m/{SHA[0]}"]
        assert "00000000000000000001-junk is damaged" in caplog.text
        moto_s3.server.client().delete_object(
            Bucket=moto_s3.bucket, Key="layout/packs/00000000000000000001-junk"
        )


class TestObjectLock:
    @pytest.fixture
    def locked(self, moto_s3: S3) -> str:
        return moto_s3.server.bucket(object_lock=True)

    def url(self, moto_s3: S3, bucket: str, **options: object) -> str:
        query = "&".join(
            f"{k}={v}" for k, v in {"endpoint": moto_s3.server.endpoint, **options}.items()
        )
        return f"s3://{bucket}/archive?{query}"

    def test_blobs_are_locked_until_their_retention_ends(self, moto_s3: S3, locked: str) -> None:
        store = open_store(self.url(moto_s3, locked))
        until = datetime.now(UTC) + timedelta(days=30)
        store.put_many(
            [(f"m/{SHA[0]}", b"kept 30 days"), (f"m/{SHA[1]}", b"kept forever")],
            {f"m/{SHA[0]}": until},
        )
        client = moto_s3.server.client()
        # two packs: the blob kept forever is not locked with the other one
        heads = {
            o["Key"]: client.head_object(Bucket=locked, Key=o["Key"])
            for o in objects(moto_s3, locked, "archive/packs/")
        }
        assert len(heads) == 2
        [(key, head)] = [(k, h) for k, h in heads.items() if "ObjectLockMode" in h]
        pack = {"Key": key}
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - until) < timedelta(seconds=1)
        # a purge before that date is refused, said so, and the bytes stay readable
        with pytest.raises(StoreError, match=r"Object Lock kept 1 object\(s\)") as info:
            store.delete_many([f"m/{SHA[0]}"])
        assert "next purge or erase tries again" in str(info.value)
        assert store.get(f"m/{SHA[0]}") == b"kept 30 days"
        # nor can anyone else delete it behind the archiver's back
        versions = client.list_object_versions(Bucket=locked, Prefix=pack["Key"])["Versions"]
        answer = client.delete_objects(
            Bucket=locked,
            Delete={"Objects": [{"Key": pack["Key"], "VersionId": versions[0]["VersionId"]}]},
        )
        assert answer.get("Errors"), answer

    def test_mode_and_grouping_by_retention(self, moto_s3: S3, locked: str) -> None:
        store = open_store(self.url(moto_s3, locked, lock_mode="governance", pack_limit=100))
        soon = datetime.now(UTC) + timedelta(days=1)
        later = datetime.now(UTC) + timedelta(days=400)
        store.put_many(
            [(f"p/{SHA[0]}", b"a"), (f"p/{SHA[1]}", b"b"), (f"p/{SHA[2]}", b"c" * 101)],
            {f"p/{SHA[0]}": soon, f"p/{SHA[1]}": later, f"p/{SHA[2]}": later},
        )
        client = moto_s3.server.client()
        dates = sorted(
            client.head_object(Bucket=locked, Key=o["Key"])["ObjectLockRetainUntilDate"]
            for o in objects(moto_s3, locked, "archive/")
        )
        # two packs (one per retention hour) and the large blob on its own
        assert len(dates) == 3
        assert abs(dates[0] - soon) < timedelta(seconds=1)
        assert all(abs(d - later) < timedelta(seconds=1) for d in dates[1:])
        head = client.head_object(Bucket=locked, Key=f"archive/blobs/p/{SHA[2]}")
        assert head["ObjectLockMode"] == "GOVERNANCE"

    def test_a_retention_past_a_century_is_locked_for_a_century(
        self, moto_s3: S3, locked: str
    ) -> None:
        store = open_store(self.url(moto_s3, locked))
        store.put_many(
            [(f"m/{SHA[0]}", b"9999y")], {f"m/{SHA[0]}": datetime(9999, 12, 31, tzinfo=UTC)}
        )
        [pack] = objects(moto_s3, locked, "archive/packs/")
        head = moto_s3.server.client().head_object(Bucket=locked, Key=pack["Key"])
        expected = datetime.now(UTC) + timedelta(days=36500)
        assert abs(head["ObjectLockRetainUntilDate"] - expected) < timedelta(minutes=5)

    def test_past_and_absent_dates_set_no_lock(self, moto_s3: S3, locked: str) -> None:
        """Mail imported after its retention ended: S3 refuses a date in the past, so none
        is set and the blob can go at once."""
        store = open_store(self.url(moto_s3, locked))
        store.put_many([(f"m/{SHA[0]}", b"old")], {f"m/{SHA[0]}": datetime(1999, 1, 1, tzinfo=UTC)})
        store.delete(f"m/{SHA[0]}")
        assert not store.exists(f"m/{SHA[0]}")
        assert objects(moto_s3, locked, "archive/") == []

    def test_without_object_lock_nothing_is_locked(self, moto_s3: S3) -> None:
        store = open_store(moto_s3.url("nolock"))
        until = datetime.now(UTC) + timedelta(days=30)
        store.put_many([(f"m/{SHA[0]}", b"x")], {f"m/{SHA[0]}": until})
        store.delete(f"m/{SHA[0]}")
        assert not store.exists(f"m/{SHA[0]}")


class TestFailures:
    def test_a_store_that_goes_down_is_a_store_error_and_then_comes_back(self) -> None:
        server = MotoServer().start()
        try:
            bucket = server.bucket()
            store = open_store(f"s3://{bucket}/x?endpoint={server.endpoint}&attempts=2&timeout=2")
            store.put(f"m/{SHA[0]}", b"before")
            port = server.port
            server.stop()
            with pytest.raises(StoreError, match="unreachable after 2 attempts") as info:
                store.put(f"m/{SHA[1]}", b"during")
            assert server.endpoint in str(info.value)
            with pytest.raises(StoreError, match="unreachable"):
                store.get(f"m/{SHA[0]}")
            server = MotoServer(port).start()  # back, empty (moto keeps nothing)
            server.bucket()
            with pytest.raises(StoreError, match="NoSuchBucket: create the bucket"):
                store.put(f"m/{SHA[1]}", b"after")
        finally:
            server.stop()

    def test_the_secret_key_is_never_logged_nor_in_errors(
        self, moto_s3: S3, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        messages: list[str] = []
        store = open_store(moto_s3.url("secret"))
        store.put_many([(f"m/{SHA[0]}", b"x" * 10), (f"p/{SHA[1]}", b"y" * 300_000)])
        store.get(f"m/{SHA[0]}")
        store.delete_many([f"m/{SHA[0]}", f"p/{SHA[1]}"])
        for url in (
            f"s3://no-such-bucket-here/x?endpoint={moto_s3.server.endpoint}",
            "s3://bucket/x?endpoint=http://127.0.0.1:1&attempts=1&timeout=1",
        ):
            with pytest.raises(StoreError) as info:
                open_store(url).put(f"m/{SHA[0]}", b"x")
            messages.append(str(info.value))
        with pytest.raises(StoreError) as info:
            open_store(f"s3://AKIA:{SECRET_KEY}@bucket/x")
        messages.append(str(info.value))
        assert "DEBUG" in {r.levelname for r in caplog.records}  # botocore did talk
        assert SECRET_KEY not in caplog.text
        assert all(SECRET_KEY not in m for m in messages), messages
        assert "credentials do not belong in the URL" in messages[-1]


class TestUrl:
    @pytest.mark.parametrize(
        ("url", "error"),
        [
            ("s3://Bad_Bucket/x", "not an S3 bucket name"),
            ("s3://b/x", "not an S3 bucket name"),
            ("s3://bucket/x?lock_mode=forever", "lock_mode 'FOREVER'"),
            ("s3://bucket/x?pack_limit=%D9%A1%D9%A2", "pack_limit="),
            ("s3://bucket/x?pack_limit=99999999999999999", "pack_limit="),
            ("s3://bucket/x?multipart=1000", "from 5242880"),
            ("s3://bucket/x?endpoint=ftp://host", "endpoint 'ftp://host'"),
            ("s3://bucket/x?colour=red", "unknown option 'colour'"),
            ("s3://bucket/a\x01b", "not a usable key prefix"),
        ],
    )
    def test_bad_urls_name_the_fix(self, url: str, error: str) -> None:
        with pytest.raises(StoreError, match=error.replace("(", r"\(")):
            parse_s3_url(url)

    def test_options(self) -> None:
        loc = parse_s3_url(
            "s3://archive.example/mail/2026/?endpoint=https://minio:9000&region=eu-1&lock_mode=governance"
        )
        assert (loc.bucket, loc.prefix, loc.endpoint) == (
            "archive.example",
            "mail/2026/",
            "https://minio:9000",
        )
        assert (loc.region, loc.lock_mode, loc.url) == (
            "eu-1",
            "GOVERNANCE",
            "s3://archive.example/mail/2026/",
        )
