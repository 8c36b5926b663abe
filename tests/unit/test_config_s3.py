"""The ``[s3]`` table: options for an ``s3://`` store URL that does not give them itself."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError, StoreError
from postfix_archiver.store.s3_url import parse_s3_url


def store_url(text: str) -> str:
    return parse_config(
        f'[archive]\nhome = "/srv/archive"\n{text}', "/etc/pa.toml"
    ).archive.store_url


def test_the_table_fills_in_what_the_url_leaves_out() -> None:
    url = store_url(
        'store = "s3://mail-archive/eu?region=eu-central-1"\n'
        '[s3]\nendpoint = "https://s3.example.net"\nregion = "us-east-1"\n'
        'lock_mode = "GOVERNANCE"\npack_limit = 65536\n'
    )
    location = parse_s3_url(url)
    assert (location.bucket, location.prefix) == ("mail-archive", "eu/")
    assert location.region == "eu-central-1"  # the URL's own option wins
    assert location.endpoint == "https://s3.example.net"
    assert (location.lock_mode, location.pack_limit) == ("GOVERNANCE", 65536)


def test_a_url_without_options_gains_a_query() -> None:
    url = store_url('store = "s3://mail-archive"\n[s3]\nendpoint = "http://127.0.0.1:9000/"\n')
    assert dict(parse_qsl(urlsplit(url).query)) == {"endpoint": "http://127.0.0.1:9000/"}


def test_the_table_without_an_s3_store_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        store_url('[s3]\nregion = "eu-west-1"\n')
    assert (info.value.line, info.value.key) == (3, "s3")
    assert 'store = "s3://BUCKET/PREFIX"' in info.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("lock_mode = 3", "must be a str"),
        ("bucket = 'x'", "unknown key"),
    ],
)
def test_wrong_keys_point_at_their_line(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        store_url(f'store = "s3://mail-archive"\n[s3]\n{text}\n')
    assert info.value.line == 5
    assert reason in info.value.reason


def test_a_bad_value_is_refused_when_the_store_opens() -> None:
    url = store_url('store = "s3://mail-archive"\n[s3]\nlock_mode = "legal"\n')
    with pytest.raises(StoreError, match="lock_mode 'LEGAL': use COMPLIANCE"):
        parse_s3_url(url)
