"""Cryptographic core of the ICE exchange: office keys, parcel encryption, signatures.

Everything here is pure (no web, no database) so it can be tested in isolation and
reviewed on its own. The building blocks all come from libsodium through PyNaCl:

* each office has an X25519 key pair (others seal parcel keys to it) and an Ed25519
  key pair (it signs manifests and receipts);
* private keys are stored wrapped in a SecretBox under a key-encryption key (KEK)
  derived from a deployment secret;
* parcel files are encrypted with crypto_secretstream (XChaCha20-Poly1305) in 64 KiB
  chunks, so large files never sit in memory and truncation is detected;
* the per-file key is sealed to the recipient office with a SealedBox;
* manifests and receipts are signed over a canonical JSON form.

Failures that mean "do not trust this data" raise subclasses of ``IceCryptoError``;
malformed arguments from our own code raise ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.secret
import nacl.signing

__all__ = [
    "CHUNK_SIZE",
    "KDF_SALT_BYTES",
    "RECEIPT_VERDICTS",
    "FileDigest",
    "IceCryptoError",
    "KeyUnwrapError",
    "OfficeKeys",
    "PublicOfficeKeys",
    "SignatureError",
    "TamperedError",
    "build_receipt",
    "canonical_json",
    "decrypt_stream",
    "derive_kek",
    "encrypt_stream",
    "export_public",
    "fingerprint",
    "generate_file_key",
    "generate_office_keys",
    "import_public",
    "manifest_digest",
    "new_kek_salt",
    "open_sealed_key",
    "seal_key",
    "sign_manifest",
    "sign_receipt",
    "unwrap_private_keys",
    "verify_manifest",
    "verify_receipt",
    "wrap_private_keys",
]

# --------------------------------------------------------------------------- errors


class IceCryptoError(Exception):
    """Base class: the data at hand must not be trusted or used."""


class KeyUnwrapError(IceCryptoError):
    """A wrapped or sealed key could not be opened (wrong key or damaged blob)."""


class TamperedError(IceCryptoError):
    """An encrypted parcel file failed authentication, was truncated or extended."""


class SignatureError(IceCryptoError):
    """A manifest or receipt signature does not verify."""


# ------------------------------------------------------------------------ constants

KEY_BYTES = 32
"""Size of every symmetric key and X25519/Ed25519 key handled here."""

CHUNK_SIZE = 64 * 1024
"""Plaintext bytes per secretstream chunk: bounds memory use for any file size."""

_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

KDF_SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
# Changing these changes every derived KEK, so existing wrapped blobs would no longer
# open. They are deliberately constants, not settings.
_KDF_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_KDF_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE

_WRAP_VERSION = 1
_WRAPPED_PLAINTEXT_BYTES = 1 + 2 * KEY_BYTES

_PUBLIC_EXPORT_VERSION = 1

# Signatures cover "<context>\n<canonical json>". The context keeps a manifest
# signature from ever being accepted as a receipt signature (and vice versa), even
# though both are made with the same office signing key.
_MANIFEST_CONTEXT = b"caseforum-ice/manifest/v1\n"
_RECEIPT_CONTEXT = b"caseforum-ice/receipt/v1\n"

RECEIPT_VERDICTS = frozenset({"accepted", "rejected"})
_RECEIPT_FIELDS = ("parcel_id", "manifest_sha256", "received_at", "receiver_office", "verdict")


# ---------------------------------------------------------------------- office keys


def fingerprint(public_key_bytes: bytes) -> str:
    """Short human-comparable form of a public key, for checking keys over the phone.

    SHA-256 of the raw key, first 16 bytes, as eight colon-separated groups of four
    hex digits (``1a2b:3c4d:...``). 128 bits is ample against second preimages.
    """
    if len(public_key_bytes) != KEY_BYTES:
        raise ValueError(f"public key must be {KEY_BYTES} bytes, got {len(public_key_bytes)}")
    digest = hashlib.sha256(public_key_bytes).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True)
class PublicOfficeKeys:
    """The public half of a partner office's keys, as imported from its export."""

    office: str
    encryption_public: nacl.public.PublicKey
    verify_key: nacl.signing.VerifyKey

    @property
    def encryption_fingerprint(self) -> str:
        return fingerprint(bytes(self.encryption_public))

    @property
    def signing_fingerprint(self) -> str:
        return fingerprint(bytes(self.verify_key))


@dataclass(frozen=True)
class OfficeKeys:
    """Our own office's private keys; the public halves are derived on demand."""

    encryption_key: nacl.public.PrivateKey = field(repr=False)
    signing_key: nacl.signing.SigningKey = field(repr=False)

    @property
    def encryption_public(self) -> nacl.public.PublicKey:
        return self.encryption_key.public_key

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return self.signing_key.verify_key

    @property
    def encryption_fingerprint(self) -> str:
        return fingerprint(bytes(self.encryption_public))

    @property
    def signing_fingerprint(self) -> str:
        return fingerprint(bytes(self.verify_key))

    def public(self, office: str) -> PublicOfficeKeys:
        """Our public keys in the same shape as a partner's, e.g. for self-tests."""
        return PublicOfficeKeys(office, self.encryption_public, self.verify_key)


def generate_office_keys() -> OfficeKeys:
    """Fresh X25519 + Ed25519 key pairs from the OS random source."""
    return OfficeKeys(nacl.public.PrivateKey.generate(), nacl.signing.SigningKey.generate())


# ------------------------------------------------------------------ keys at rest


def new_kek_salt() -> bytes:
    """Random salt for ``derive_kek``; store it next to the wrapped blob (not secret)."""
    return secrets.token_bytes(KDF_SALT_BYTES)


def derive_kek(secret: str, salt: bytes) -> bytes:
    """Derive the 32-byte key-encryption key from the deployment secret setting.

    Argon2id rather than a BLAKE2b KDF: nothing guarantees the setting is a random
    high-entropy key; an operator may well type a passphrase. Argon2id is memory-hard,
    so a stolen database plus a guessable secret still costs an attacker real work
    per guess. The price (about 64 MiB and a fraction of a second) is paid once when
    the keys are loaded, so callers should cache the result, not derive per request.
    """
    if not secret:
        raise ValueError("the key-encryption secret setting is empty")
    if len(salt) != KDF_SALT_BYTES:
        raise ValueError(f"KEK salt must be {KDF_SALT_BYTES} bytes, got {len(salt)}")
    return nacl.pwhash.argon2id.kdf(
        KEY_BYTES,
        secret.encode("utf-8"),
        salt,
        opslimit=_KDF_OPSLIMIT,
        memlimit=_KDF_MEMLIMIT,
    )


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes")


def wrap_private_keys(keys: OfficeKeys, kek: bytes) -> bytes:
    """Encrypt both private keys under the KEK so they can be stored in the database.

    SecretBox is authenticated, so a wrong KEK or an edited blob is detected on
    unwrap instead of yielding garbage keys. A version byte inside the encrypted
    payload leaves room for a future layout.
    """
    _check_key(kek, "KEK")
    payload = bytes([_WRAP_VERSION]) + bytes(keys.encryption_key) + bytes(keys.signing_key)
    return bytes(nacl.secret.SecretBox(bytes(kek)).encrypt(payload))


def unwrap_private_keys(blob: bytes, kek: bytes) -> OfficeKeys:
    """Reverse of ``wrap_private_keys``; raises ``KeyUnwrapError`` if it cannot."""
    _check_key(kek, "KEK")
    try:
        payload = nacl.secret.SecretBox(bytes(kek)).decrypt(bytes(blob))
    except nacl.exceptions.CryptoError as exc:
        raise KeyUnwrapError(
            "cannot unwrap the office private keys: the key-encryption secret or salt "
            "is wrong, or the stored key blob is damaged"
        ) from exc
    if len(payload) != _WRAPPED_PLAINTEXT_BYTES or payload[0] != _WRAP_VERSION:
        raise KeyUnwrapError("the stored key blob has an unknown format or version")
    return OfficeKeys(
        nacl.public.PrivateKey(payload[1 : 1 + KEY_BYTES]),
        nacl.signing.SigningKey(payload[1 + KEY_BYTES :]),
    )


# ------------------------------------------------------------- public key exchange


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_public(keys: OfficeKeys, office: str) -> dict[str, Any]:
    """JSON-ready public key record to hand to a partner office.

    The fingerprints are redundant on purpose: the importer recomputes them, so a
    record damaged in transit (or edited by hand) is caught, and people can compare
    them out of band.
    """
    if not isinstance(office, str) or not office.strip():
        raise ValueError("office must be a non-empty string")
    return {
        "version": _PUBLIC_EXPORT_VERSION,
        "office": office,
        "x25519": _b64(bytes(keys.encryption_public)),
        "ed25519": _b64(bytes(keys.verify_key)),
        "x25519_fingerprint": keys.encryption_fingerprint,
        "ed25519_fingerprint": keys.signing_fingerprint,
    }


def _decode_public_key(data: Mapping[str, Any], name: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"public key record: '{name}' is missing or not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"public key record: '{name}' is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"public key record: '{name}' must decode to {KEY_BYTES} bytes, got {len(raw)}"
        )
    if raw == bytes(KEY_BYTES):
        raise ValueError(f"public key record: '{name}' is all zeros")
    expected = data.get(f"{name}_fingerprint")
    if not isinstance(expected, str):
        raise ValueError(f"public key record: '{name}_fingerprint' is missing")
    if expected.strip().lower() != fingerprint(raw):  # public values: no timing concern
        raise ValueError(
            f"public key record: '{name}_fingerprint' does not match the '{name}' key "
            "(record damaged or altered)"
        )
    return raw


def import_public(data: Mapping[str, Any]) -> PublicOfficeKeys:
    """Validate a partner's exported public key record; ``ValueError`` says what is wrong.

    Unknown extra fields are ignored so a newer exporter can add information.
    """
    if not isinstance(data, Mapping):
        raise ValueError("public key record must be a JSON object")
    version = data.get("version")
    if version != _PUBLIC_EXPORT_VERSION:
        raise ValueError(
            f"public key record: unsupported version {version!r} "
            f"(expected {_PUBLIC_EXPORT_VERSION})"
        )
    office = data.get("office")
    if not isinstance(office, str) or not office.strip():
        raise ValueError("public key record: 'office' is missing or empty")
    x25519 = _decode_public_key(data, "x25519")
    ed25519 = _decode_public_key(data, "ed25519")
    return PublicOfficeKeys(office, nacl.public.PublicKey(x25519), nacl.signing.VerifyKey(ed25519))


# ------------------------------------------------------------------ parcel files


@dataclass(frozen=True)
class FileDigest:
    """Plaintext size and SHA-256, measured while streaming (for the manifest)."""

    size: int
    sha256: str


def generate_file_key() -> bytes:
    """A fresh random key for one parcel file; never reuse it for another file."""
    return sodium.crypto_secretstream_xchacha20poly1305_keygen()


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at end of file."""
    parts: list[bytes] = []
    remaining = n
    while remaining:
        part = src.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, key: bytes) -> FileDigest:
    """Encrypt ``src`` into ``dst`` chunk by chunk; returns the plaintext digest.

    Layout: secretstream header, then one ciphertext frame per 64 KiB of plaintext
    (each frame is ``CHUNK_SIZE + 17`` bytes except the last). The last frame carries
    TAG_FINAL; when the file size is a multiple of the chunk size an empty final frame
    is added, so the reader can always tell a complete stream from a truncated one.
    """
    _check_key(key, "file key")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    dst.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, bytes(key)))
    sha = hashlib.sha256()
    size = 0
    while True:
        chunk = _read_exact(src, CHUNK_SIZE)
        sha.update(chunk)
        size += len(chunk)
        final = len(chunk) < CHUNK_SIZE
        tag = _TAG_FINAL if final else _TAG_MESSAGE
        dst.write(sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, tag=tag))
        if final:
            return FileDigest(size=size, sha256=sha.hexdigest())


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: bytes) -> FileDigest:
    """Decrypt a stream made by ``encrypt_stream``; ``TamperedError`` on any doubt.

    Each chunk is authenticated before it is written, but a truncated stream is only
    recognised at the end. Until this returns, treat ``dst`` as untrusted: write to a
    temporary file and move it into place only after success.
    """
    _check_key(key, "file key")
    header = _read_exact(src, _HEADER_BYTES)
    if len(header) != _HEADER_BYTES:
        raise TamperedError("encrypted file is too short to contain a stream header")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, bytes(key))
    except nacl.exceptions.CryptoError as exc:
        raise TamperedError("encrypted file has an invalid stream header") from exc
    sha = hashlib.sha256()
    size = 0
    while True:
        frame = _read_exact(src, CHUNK_SIZE + _ABYTES)
        if not frame:
            raise TamperedError("encrypted file is truncated: the final chunk is missing")
        try:
            chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, frame)
        except nacl.exceptions.CryptoError as exc:
            raise TamperedError(
                f"encrypted file failed authentication at plaintext offset {size} "
                "(altered, damaged, or wrong key)"
            ) from exc
        if tag not in (_TAG_MESSAGE, _TAG_FINAL):
            raise TamperedError(f"encrypted file has an unexpected chunk tag {tag}")
        sha.update(chunk)
        size += len(chunk)
        dst.write(chunk)
        if tag == _TAG_FINAL:
            # Data glued after the final frame normally already fails authentication
            # above (frames are read at full size); this catches what is left over.
            if src.read(1):
                raise TamperedError("encrypted file has unexpected data after the final chunk")
            return FileDigest(size=size, sha256=sha.hexdigest())


# ------------------------------------------------------------------- key sealing


def _public_key(key: nacl.public.PublicKey | bytes) -> nacl.public.PublicKey:
    if isinstance(key, nacl.public.PublicKey):
        return key
    _check_key(key, "recipient public key")
    return nacl.public.PublicKey(bytes(key))


def seal_key(file_key: bytes, recipient_x25519_public: nacl.public.PublicKey | bytes) -> bytes:
    """Encrypt a parcel file key so only the recipient office can open it.

    SealedBox uses an ephemeral sender key, so the sealed key reveals nothing about
    the sender; authenticity of the parcel comes from the signed manifest instead.
    """
    _check_key(file_key, "file key")
    return nacl.public.SealedBox(_public_key(recipient_x25519_public)).encrypt(bytes(file_key))


def open_sealed_key(blob: bytes, private: nacl.public.PrivateKey | OfficeKeys) -> bytes:
    """Open a sealed file key with our X25519 private key; ``KeyUnwrapError`` otherwise."""
    private_key = private.encryption_key if isinstance(private, OfficeKeys) else private
    try:
        file_key = nacl.public.SealedBox(private_key).decrypt(bytes(blob))
    except nacl.exceptions.CryptoError as exc:
        raise KeyUnwrapError(
            "cannot open the sealed file key: it was sealed for another office or is damaged"
        ) from exc
    if len(file_key) != KEY_BYTES:
        raise KeyUnwrapError("sealed file key has the wrong length")
    return file_key


# --------------------------------------------------------------- signed documents


def _check_canonical(obj: Any, path: str) -> None:
    """Reject values whose JSON text is not unambiguous across implementations."""
    if obj is None or isinstance(obj, str | bool | int):
        return
    if isinstance(obj, float):
        raise TypeError(f"canonical JSON: float at {path} (use an int or a string)")
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON: non-string key {key!r} at {path}")
            _check_canonical(value, f"{path}.{key}")
        return
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_canonical(value, f"{path}[{i}]")
        return
    raise TypeError(f"canonical JSON: unsupported type {type(obj).__name__} at {path}")


def _plain(obj: Any) -> Any:
    """Turn nested Mappings into dicts so the json module accepts them."""
    if isinstance(obj, Mapping):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(value) for value in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """The exact bytes that get hashed or signed: sorted keys, no spaces, UTF-8.

    Only str/int/bool/None, lists and string-keyed objects are allowed. Floats are
    refused because their text form differs between languages, which would make an
    honest signature fail to verify on the other office's side.
    """
    _check_canonical(obj, "$")
    text = json.dumps(
        _plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical manifest, the value a receipt refers to."""
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def _verify_key(key: nacl.signing.VerifyKey | bytes) -> nacl.signing.VerifyKey:
    if isinstance(key, nacl.signing.VerifyKey):
        return key
    _check_key(key, "verify key")
    return nacl.signing.VerifyKey(bytes(key))


def _sign(context: bytes, obj: Mapping[str, Any], signing_key: nacl.signing.SigningKey) -> str:
    signature = signing_key.sign(context + canonical_json(obj)).signature
    return _b64(signature)


def _verify(
    context: bytes,
    what: str,
    obj: Mapping[str, Any],
    signature_b64: str,
    verify_key: nacl.signing.VerifyKey | bytes,
) -> None:
    key = _verify_key(verify_key)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError(f"{what} signature is not valid base64") from exc
    if len(signature) != 64:
        raise SignatureError(f"{what} signature has the wrong length ({len(signature)} bytes)")
    try:
        key.verify(context + canonical_json(obj), signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise SignatureError(
            f"{what} signature does not verify: the {what} was changed after signing "
            "or was signed by a different office key"
        ) from exc


def sign_manifest(manifest: Mapping[str, Any], signing_key: nacl.signing.SigningKey) -> str:
    """Base64 detached Ed25519 signature over the manifest's canonical JSON.

    The signed bytes are ``b"caseforum-ice/manifest/v1\\n" + canonical_json(manifest)``.
    """
    return _sign(_MANIFEST_CONTEXT, manifest, signing_key)


def verify_manifest(
    manifest: Mapping[str, Any],
    signature_b64: str,
    verify_key_bytes: nacl.signing.VerifyKey | bytes,
) -> None:
    """Return quietly if the sender's key signed exactly this manifest, else ``SignatureError``."""
    _verify(_MANIFEST_CONTEXT, "manifest", manifest, signature_b64, verify_key_bytes)


def build_receipt(
    *,
    parcel_id: str,
    manifest_sha256: str,
    received_at: datetime,
    receiver_office: str,
    verdict: str,
) -> dict[str, str]:
    """Assemble a receipt dict in its one canonical shape (UTC, second precision)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    receipt = {
        "parcel_id": parcel_id,
        "manifest_sha256": manifest_sha256,
        "received_at": received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "receiver_office": receiver_office,
        "verdict": verdict,
    }
    _check_receipt(receipt)
    return receipt


def _check_receipt(receipt: Mapping[str, Any]) -> None:
    if not isinstance(receipt, Mapping):
        raise ValueError("receipt must be a JSON object")
    missing = [name for name in _RECEIPT_FIELDS if name not in receipt]
    if missing:
        raise ValueError(f"receipt is missing field(s): {', '.join(missing)}")
    for name in _RECEIPT_FIELDS:
        if not isinstance(receipt[name], str) or not receipt[name]:
            raise ValueError(f"receipt field '{name}' must be a non-empty string")
    digest = receipt["manifest_sha256"]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("receipt field 'manifest_sha256' must be 64 lowercase hex digits")
    if receipt["verdict"] not in RECEIPT_VERDICTS:
        allowed = ", ".join(sorted(RECEIPT_VERDICTS))
        raise ValueError(f"receipt verdict {receipt['verdict']!r} is not one of: {allowed}")


def sign_receipt(receipt: Mapping[str, Any], signing_key: nacl.signing.SigningKey) -> str:
    """Sign a receipt (see ``build_receipt``) like a manifest, under its own context."""
    _check_receipt(receipt)
    return _sign(_RECEIPT_CONTEXT, receipt, signing_key)


def verify_receipt(
    receipt: Mapping[str, Any],
    signature_b64: str,
    verify_key_bytes: nacl.signing.VerifyKey | bytes,
) -> None:
    """``ValueError`` if the receipt is malformed, ``SignatureError`` if not signed as is.

    Checking that the receipt names the expected parcel and manifest digest is left
    to the caller, who knows what was sent.
    """
    _check_receipt(receipt)
    _verify(_RECEIPT_CONTEXT, "receipt", receipt, signature_b64, verify_key_bytes)
