"""Credentials encrypted at rest with MultiFernet (https://cryptography.io/en/latest/fernet/).

Keys come from ``TANDEM_ENCRYPTION_KEYS`` (comma-separated, newest first): MultiFernet encrypts
with the first key and decrypts with any, so a rotation is "prepend a key, run
``flask secrets rotate``, drop the old key". In the embedded default a key is generated into
``var/`` once, with a warning, so a fresh checkout runs with no set-up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.models import Credential, utcnow

log = logging.getLogger("tandem.secrets")

KEY_FILE_NAME = "encryption.key"


class SecretsError(Exception):
    """Keys are missing or malformed, or a stored secret cannot be decrypted with them."""


def load_keys(configured: str | None, var_dir: Path) -> MultiFernet:
    """Build the key ring from configuration, or from (a newly generated) ``var/`` key file.

    Raises SecretsError if a configured key is not a valid Fernet key.
    """
    if configured:
        raw_keys = [k.strip() for k in configured.split(",") if k.strip()]
        source = "TANDEM_ENCRYPTION_KEYS"
    else:
        key_file = var_dir / KEY_FILE_NAME
        if not key_file.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
            log.warning(
                "generated an encryption key in %s; set TANDEM_ENCRYPTION_KEYS in production "
                "and keep it out of the database's backups",
                key_file,
            )
        raw_keys = [key_file.read_text().strip()]
        source = str(key_file)
    try:
        return MultiFernet([Fernet(k) for k in raw_keys])
    except (ValueError, TypeError) as exc:
        raise SecretsError(f"{source}: not a valid Fernet key ({exc})") from None


class Vault:
    """Reads and writes a connection's credentials, encrypting on the way in."""

    def __init__(self, keys: MultiFernet) -> None:
        self._keys = keys

    def put(self, session: Session, connection_id: int, side: str, kind: str, value: str) -> None:
        row = session.scalar(
            select(Credential).where(
                Credential.connection_id == connection_id,
                Credential.side == side,
                Credential.kind == kind,
            )
        )
        ciphertext = self._keys.encrypt(value.encode())
        if row is None:
            session.add(
                Credential(connection_id=connection_id, side=side, kind=kind, ciphertext=ciphertext)
            )
        else:
            row.ciphertext = ciphertext
            row.rotated_at = utcnow()

    def get(self, session: Session, connection_id: int, side: str, kind: str) -> str:
        """Raises SecretsError if the credential is missing or no key decrypts it."""
        row = session.scalar(
            select(Credential).where(
                Credential.connection_id == connection_id,
                Credential.side == side,
                Credential.kind == kind,
            )
        )
        if row is None:
            raise SecretsError(f"connection {connection_id} has no {side} {kind}")
        try:
            return self._keys.decrypt(row.ciphertext).decode()
        except InvalidToken:
            raise SecretsError(
                f"connection {connection_id}: the {side} {kind} cannot be decrypted with the "
                "configured keys (was a key dropped before `flask secrets rotate` finished?)"
            ) from None

    def seal(self, value: str) -> bytes:
        """``value`` encrypted under the newest key (for secrets kept outside ``credentials``)."""
        return self._keys.encrypt(value.encode())

    def unseal(self, ciphertext: bytes) -> str | None:
        """What :meth:`seal` sealed, or None if no configured key opens it (short-lived secrets,
        such as access tokens, are then simply minted again)."""
        try:
            return self._keys.decrypt(ciphertext).decode()
        except InvalidToken:
            return None

    def rotate(self, session: Session, batch_size: int = 100) -> int:
        """Re-encrypt every credential under the newest key. Restartable; returns rows rewritten."""
        done = 0
        last_id = 0
        while True:
            rows = session.scalars(
                select(Credential)
                .where(Credential.id > last_id)
                .order_by(Credential.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return done
            for row in rows:
                row.ciphertext = self._keys.rotate(row.ciphertext)
                row.rotated_at = utcnow()
                last_id = row.id
                done += 1
            session.flush()
