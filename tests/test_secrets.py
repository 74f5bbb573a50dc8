"""Credentials at rest: encrypted, rotatable, never readable without the keys."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet

from sync.db import transaction
from sync.models import Credential
from sync.secrets import SecretsError, Vault, load_keys
from tests.conftest import add_connection

CANARY = "shpat_canary_0123456789abcdef"


def test_embedded_default_generates_one_key_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tandem.secrets"):
        first = load_keys(None, tmp_path)
    assert "generated an encryption key" in caplog.text
    assert (tmp_path / "encryption.key").stat().st_mode & 0o077 == 0  # owner-only
    second = load_keys(None, tmp_path)  # the same key, read back
    assert second.decrypt(first.encrypt(b"x")) == b"x"


def test_bad_configured_key_is_a_clear_error(tmp_path):
    with pytest.raises(SecretsError, match="TANDEM_ENCRYPTION_KEYS"):
        load_keys("not-a-key", tmp_path)


def test_stored_ciphertext_never_contains_the_token(sessions):
    vault = Vault(load_keys(Fernet.generate_key().decode(), None))
    cid = add_connection(sessions)
    with transaction(sessions) as s:
        vault.put(s, cid, "store", "access_token", CANARY)
    with transaction(sessions) as s:
        row = s.query(Credential).one()
        assert CANARY.encode() not in row.ciphertext
        assert vault.get(s, cid, "store", "access_token") == CANARY


def test_rotation_reencrypts_under_the_new_key_so_the_old_can_be_dropped(sessions):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    cid = add_connection(sessions)
    with transaction(sessions) as s:
        Vault(load_keys(old, None)).put(s, cid, "crm", "access_token", CANARY)
    with transaction(sessions) as s:
        assert Vault(load_keys(f"{new},{old}", None)).rotate(s) == 1
    with transaction(sessions) as s:
        assert Vault(load_keys(new, None)).get(s, cid, "crm", "access_token") == CANARY
        with pytest.raises(SecretsError, match="cannot be decrypted"):
            Vault(load_keys(old, None)).get(s, cid, "crm", "access_token")
