"""Passwords never leave db/dsn.py: found by pattern, so unparsable strings are masked too."""

from __future__ import annotations

import pytest

from absurd_tui.db import dsn
from absurd_tui.db.connect import connect
from absurd_tui.sdk import Absurd

UNPARSABLE = [
    ("postgresql://u:s3cret%pw@host/db", 'invalid percent-encoded token: "****"'),
    ("postgresql://u:s3cret@[::1/db", '"postgresql://u:****@[::1/db"'),
    ("host=db password='s3cret", "unterminated quoted string"),
    ("host=db password=s3cret bogus", 'missing "=" after "bogus"'),
]


@pytest.mark.parametrize(("text", "what"), UNPARSABLE)
def test_an_unparsable_dsn_is_named_without_its_password(text, what):
    with pytest.raises(dsn.UnparsableDsn) as info:
        dsn.check(text)
    message = str(info.value)
    assert message.startswith("The connection string cannot be parsed: ")
    assert what in message and "s3cret" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("text", "_"), UNPARSABLE)
def test_connecting_and_the_sdk_refuse_it_the_same_way(text, _):
    with pytest.raises(dsn.UnparsableDsn) as info:
        connect(text)
    assert "s3cret" not in str(info.value)
    with pytest.raises(dsn.UnparsableDsn) as info:
        Absurd(text)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:s3cret@h/db", "postgresql://u:****@h/db"),
        ("postgresql://u:p@ss%40w0rd@h/db", "postgresql://u:****@h/db"),
        ("postgresql://u@h/db?password=s3cret&port=1", "postgresql://u@h/db?password=****&port=1"),
        ("host=h password=s3cret port=1", "host=h password=**** port=1"),
        ("host=h password = 's3 \\' cret' port=1", "host=h password = **** port=1"),
        ("host=h dbname=password=x", "host=h dbname=password=x"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_passwords_are_masked_by_pattern(text, masked):
    assert dsn.mask_passwords(text) == masked


def test_scrub_removes_the_password_wherever_a_message_quotes_it():
    secret = "postgresql://app:Sup3r%2Fsecret@db/app"
    message = 'auth failed: "Sup3r%2Fsecret" (decoded Sup3r/secret) in postgresql://app:x@db'
    scrubbed = dsn.scrub(message, secret)
    assert "Sup3r" not in scrubbed and "app:****@db" in scrubbed


def test_a_short_password_is_masked_only_as_a_whole_token():
    assert dsn.scrub('bad token "ab" in abc', "postgresql://u:ab@h/db") == 'bad token "****" in abc'


def test_has_password_and_redact():
    assert dsn.has_password("postgresql://u:pw@h/db")
    assert dsn.has_password("host=h password=pw")
    assert not dsn.has_password("postgresql://u@h/db")
    assert dsn.redact("postgresql://u:pw@h/db?password=pw&sslmode=require") == (
        "postgresql://u@h/db?sslmode=require"
    )
    assert dsn.redact("postgresql://u:pw@[::1/db") == "<unparsable connection string>"


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://u@h/db?sslpassword=keyphrase1&sslmode=require",
        "host=h user=u sslpassword=keyphrase1",
    ],
)
def test_the_client_keys_passphrase_is_a_secret_too(text):
    assert "keyphrase1" not in dsn.redact(text)
    assert "keyphrase1" not in dsn.scrub(f"could not load key from {text}", text)
    assert dsn.has_password(text)
