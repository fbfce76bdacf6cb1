"""Credentials encrypted at rest with Fernet (``cryptography``).

The key comes from ``SMSAPP_ENCRYPTION_KEY`` (a Fernet key, or any passphrase, which is stretched into one); when
unset it is derived from ``SECRET_KEY``, so rotating SECRET_KEY means re-entering the credentials.
"""

from __future__ import annotations

import base64
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

logger = logging.getLogger(__name__)


class UndecryptableSecret(ValueError):
    """A stored secret that the current key cannot decrypt (the key changed): the admin must enter it again."""


def _fernet() -> Fernet:
    configured = settings.SMSAPP_ENCRYPTION_KEY
    if configured:
        try:
            return Fernet(configured.encode())
        except ValueError:
            material = configured.encode()  # a passphrase, not a Fernet key: stretch it below
    else:
        material = settings.SECRET_KEY.encode()
    digest = hashlib.pbkdf2_hmac("sha256", material, b"smsapp-credentials-v1", 100_000)
    return Fernet(base64.urlsafe_b64encode(digest))


_cache: dict[str, Fernet] = {}


def _cached_fernet() -> Fernet:
    # PBKDF2 is deliberately slow: derive once per key, not once per read.
    fingerprint = hashlib.sha256(f"{settings.SMSAPP_ENCRYPTION_KEY}|{settings.SECRET_KEY}".encode()).hexdigest()
    if fingerprint not in _cache:
        _cache.clear()
        _cache[fingerprint] = _fernet()
    return _cache[fingerprint]


def encrypt(plain: str) -> str:
    return "" if not plain else _cached_fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _cached_fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        logger.warning("A stored credential cannot be decrypted with the current key; enter it again.")
        raise UndecryptableSecret("The stored credential cannot be decrypted (the encryption key changed).") from None


def mask(secret: str) -> str:
    """``••••••••1a2b``: enough to recognise a credential, never enough to use it."""
    if not secret:
        return ""
    return "••••••••" + (secret[-4:] if len(secret) >= 12 else "")
