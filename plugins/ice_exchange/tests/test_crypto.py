"""Tests for the ICE exchange crypto core: each one is a failure an office would see."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from caseforum_ice_exchange.crypto import (
    CHUNK_SIZE,
    KeyUnwrapError,
    OfficeKeys,
    SignatureError,
    TamperedError,
    build_receipt,
    canonical_json,
    decrypt_stream,
    derive_kek,
    encrypt_stream,
    export_public,
    fingerprint,
    generate_file_key,
    generate_office_keys,
    import_public,
    manifest_digest,
    new_kek_salt,
    open_sealed_key,
    seal_key,
    sign_manifest,
    sign_receipt,
    unwrap_private_keys,
    verify_manifest,
    verify_receipt,
    wrap_private_keys,
)

FRAME = CHUNK_SIZE + 17  # ciphertext bytes per full chunk (plaintext + Poly1305 tag)
HEADER = 24


@pytest.fixture(scope="module")
def epo() -> OfficeKeys:
    return generate_office_keys()


@pytest.fixture(scope="module")
def jpo() -> OfficeKeys:
    return generate_office_keys()


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return os.urandom(300_000)  # five chunks, the last one partial


def encrypt(data: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key)
    return out.getvalue()


def decrypt(blob: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, key)
    return out.getvalue()


# ------------------------------------------------------------------ fingerprints


def test_fingerprint_is_readable_and_distinguishes_keys(epo: OfficeKeys, jpo: OfficeKeys) -> None:
    fp = fingerprint(bytes(epo.verify_key))
    groups = fp.split(":")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    assert fp.replace(":", "") == hashlib.sha256(bytes(epo.verify_key)).hexdigest()[:32]
    assert fp != fingerprint(bytes(jpo.verify_key))
    with pytest.raises(ValueError, match="32 bytes"):
        fingerprint(b"short")


# --------------------------------------------------------------- stream encryption


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 5, 300_000])
def test_stream_round_trip_reports_size_and_sha256(size: int) -> None:
    data = os.urandom(size)
    key = generate_file_key()
    out = io.BytesIO()
    sent = encrypt_stream(io.BytesIO(data), out, key)
    blob = out.getvalue()
    if size >= 64:
        assert data[:64] not in blob  # it really is encrypted

    back = io.BytesIO()
    received = decrypt_stream(io.BytesIO(blob), back, key)

    assert back.getvalue() == data
    assert sent == received
    assert sent.size == size
    assert sent.sha256 == hashlib.sha256(data).hexdigest()


def test_ciphertext_layout_is_header_plus_one_tagged_frame_per_chunk(plaintext: bytes) -> None:
    blob = encrypt(plaintext, generate_file_key())
    full_chunks, rest = divmod(len(plaintext), CHUNK_SIZE)
    assert len(blob) == HEADER + full_chunks * FRAME + rest + 17


class _TrickleReader(io.RawIOBase):
    """A source that returns at most 1000 bytes per read and logs requested sizes."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)
        self.requests: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.requests.append(size)
        return self._buf.read(min(size, 1000) if size >= 0 else 1000)


def test_streams_read_in_bounded_pieces_and_tolerate_short_reads(plaintext: bytes) -> None:
    key = generate_file_key()
    src = _TrickleReader(plaintext)
    out = io.BytesIO()
    encrypt_stream(src, out, key)  # type: ignore[arg-type]
    assert src.requests and max(src.requests) <= CHUNK_SIZE
    assert -1 not in src.requests  # never "read everything"

    src = _TrickleReader(out.getvalue())
    back = io.BytesIO()
    decrypt_stream(src, back, key)  # type: ignore[arg-type]
    assert back.getvalue() == plaintext
    assert max(src.requests) <= FRAME and -1 not in src.requests


@pytest.mark.parametrize(
    "position",
    [0, HEADER, HEADER + FRAME + 100, -1],
    ids=["header", "first-chunk", "second-chunk", "last-byte"],
)
def test_flipped_ciphertext_byte_is_refused(plaintext: bytes, position: int) -> None:
    key = generate_file_key()
    blob = bytearray(encrypt(plaintext, key))
    blob[position] ^= 0x01
    with pytest.raises(TamperedError):
        decrypt(bytes(blob), key)


def test_missing_final_chunk_is_detected_as_truncation(plaintext: bytes) -> None:
    key = generate_file_key()
    blob = encrypt(plaintext, key)
    full_chunks = len(plaintext) // CHUNK_SIZE
    without_final = blob[: HEADER + full_chunks * FRAME]
    # Every remaining chunk is authentic, so only the missing FINAL tag gives it away.
    with pytest.raises(TamperedError, match="truncated"):
        decrypt(without_final, key)


def test_exact_multiple_of_chunk_size_still_detects_truncation() -> None:
    key = generate_file_key()
    blob = encrypt(os.urandom(2 * CHUNK_SIZE), key)
    with pytest.raises(TamperedError, match="truncated"):
        decrypt(blob[: HEADER + 2 * FRAME], key)


@pytest.mark.parametrize("cut", [1, 17, 1000])
def test_ciphertext_cut_inside_a_chunk_is_refused(plaintext: bytes, cut: int) -> None:
    key = generate_file_key()
    blob = encrypt(plaintext, key)
    with pytest.raises(TamperedError):
        decrypt(blob[:-cut], key)


def test_header_only_or_empty_file_is_refused() -> None:
    key = generate_file_key()
    blob = encrypt(b"hello", key)
    with pytest.raises(TamperedError, match="truncated"):
        decrypt(blob[:HEADER], key)
    with pytest.raises(TamperedError, match="too short"):
        decrypt(b"", key)


@pytest.mark.parametrize(
    "garbage", [b"\x00", os.urandom(17), os.urandom(FRAME)], ids=["1B", "17B", "frame"]
)
@pytest.mark.parametrize("size", [300_000, 2 * CHUNK_SIZE, 0])
def test_appended_data_is_refused(size: int, garbage: bytes) -> None:
    key = generate_file_key()
    blob = encrypt(os.urandom(size), key)
    with pytest.raises(TamperedError):
        decrypt(blob + garbage, key)


def test_appended_valid_looking_parcel_is_refused() -> None:
    """Gluing a second stream made with the same key after the first is still caught."""
    key = generate_file_key()
    with pytest.raises(TamperedError):
        decrypt(encrypt(b"first", key) + encrypt(b"second", key), key)


def test_reordered_chunks_are_refused(plaintext: bytes) -> None:
    key = generate_file_key()
    blob = encrypt(plaintext, key)
    first, second = blob[HEADER : HEADER + FRAME], blob[HEADER + FRAME : HEADER + 2 * FRAME]
    swapped = blob[:HEADER] + second + first + blob[HEADER + 2 * FRAME :]
    with pytest.raises(TamperedError, match="authentication"):
        decrypt(swapped, key)


def test_wrong_key_is_refused_before_any_plaintext_is_written(plaintext: bytes) -> None:
    blob = encrypt(plaintext, generate_file_key())
    out = io.BytesIO()
    with pytest.raises(TamperedError):
        decrypt_stream(io.BytesIO(blob), out, generate_file_key())
    assert out.getvalue() == b""


def test_malformed_file_key_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encrypt(b"data", b"too short")


# ------------------------------------------------------------------- key sealing


def test_sealed_file_key_opens_only_for_the_recipient(epo: OfficeKeys, jpo: OfficeKeys) -> None:
    file_key = generate_file_key()
    sealed = seal_key(file_key, jpo.encryption_public)
    assert file_key not in sealed

    assert open_sealed_key(sealed, jpo) == file_key
    assert open_sealed_key(sealed, jpo.encryption_key) == file_key
    with pytest.raises(KeyUnwrapError, match="another office"):
        open_sealed_key(sealed, epo)


def test_damaged_sealed_key_is_refused(jpo: OfficeKeys) -> None:
    sealed = bytearray(seal_key(generate_file_key(), bytes(jpo.encryption_public)))
    sealed[-1] ^= 0x80
    with pytest.raises(KeyUnwrapError):
        open_sealed_key(bytes(sealed), jpo)


def test_parcel_end_to_end(epo: OfficeKeys, jpo: OfficeKeys, plaintext: bytes) -> None:
    """EPO sends a file to JPO: only the sealed key and ciphertext travel."""
    file_key = generate_file_key()
    blob = encrypt(plaintext, file_key)
    sealed = seal_key(file_key, import_public(export_public(jpo, "JP")).encryption_public)

    assert decrypt(blob, open_sealed_key(sealed, jpo)) == plaintext


# ------------------------------------------------------------ manifests & receipts


@pytest.fixture()
def manifest() -> dict:
    return {
        "parcel_id": "EP-2024-000123",
        "sender": "EP",
        "recipient": "JP",
        "files": [{"name": "claims.pdf", "size": 300000, "sha256": "ab" * 32}],
        "created_at": "2024-05-01T10:00:00Z",
    }


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": [1, True, None], "a": "Düsseldorf"}) == (
        '{"a":"Düsseldorf","b":[1,true,null]}'.encode()
    )


@pytest.mark.parametrize("bad", [{"size": 1.5}, {1: "x"}, {"when": datetime.now(UTC)}])
def test_canonical_json_refuses_ambiguous_values(bad: dict) -> None:
    with pytest.raises(TypeError, match="canonical JSON"):
        canonical_json(bad)


def test_manifest_signature_verifies_regardless_of_key_order(
    epo: OfficeKeys, manifest: dict
) -> None:
    signature = sign_manifest(manifest, epo.signing_key)
    assert len(base64.b64decode(signature)) == 64
    reordered = dict(reversed(list(manifest.items())))
    verify_manifest(reordered, signature, bytes(epo.verify_key))
    verify_manifest(json.loads(json.dumps(manifest)), signature, epo.verify_key)


@pytest.mark.parametrize("field", ["parcel_id", "sender", "recipient", "files", "created_at"])
def test_manifest_signature_fails_when_any_field_changes(
    epo: OfficeKeys, manifest: dict, field: str
) -> None:
    signature = sign_manifest(manifest, epo.signing_key)
    altered = json.loads(json.dumps(manifest))
    if field == "files":
        altered["files"][0]["sha256"] = "cd" * 32
    else:
        altered[field] += "x"
    with pytest.raises(SignatureError, match="changed after signing"):
        verify_manifest(altered, signature, epo.verify_key)


def test_manifest_signature_fails_when_a_field_is_added_or_removed(
    epo: OfficeKeys, manifest: dict
) -> None:
    signature = sign_manifest(manifest, epo.signing_key)
    with pytest.raises(SignatureError):
        verify_manifest({**manifest, "note": "extra"}, signature, epo.verify_key)
    with pytest.raises(SignatureError):
        verify_manifest(
            {k: v for k, v in manifest.items() if k != "sender"}, signature, epo.verify_key
        )


def test_manifest_signed_by_another_office_is_refused(
    epo: OfficeKeys, jpo: OfficeKeys, manifest: dict
) -> None:
    forged = sign_manifest(manifest, jpo.signing_key)
    with pytest.raises(SignatureError, match="different office key"):
        verify_manifest(manifest, forged, epo.verify_key)


@pytest.mark.parametrize(
    ("signature", "message"),
    [("not base64!!", "not valid base64"), (base64.b64encode(b"x" * 10).decode(), "length")],
)
def test_malformed_signature_is_refused_clearly(
    epo: OfficeKeys, manifest: dict, signature: str, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_manifest(manifest, signature, epo.verify_key)


@pytest.fixture()
def receipt(manifest: dict) -> dict:
    return build_receipt(
        parcel_id=manifest["parcel_id"],
        manifest_sha256=manifest_digest(manifest),
        received_at=datetime(2024, 5, 1, 19, 30, tzinfo=timezone(timedelta(hours=9))),
        receiver_office="JP",
        verdict="accepted",
    )


def test_receipt_round_trip(jpo: OfficeKeys, manifest: dict, receipt: dict) -> None:
    assert receipt["received_at"] == "2024-05-01T10:30:00Z"
    assert receipt["manifest_sha256"] == hashlib.sha256(canonical_json(manifest)).hexdigest()
    signature = sign_receipt(receipt, jpo.signing_key)
    verify_receipt(json.loads(json.dumps(receipt)), signature, bytes(jpo.verify_key))


@pytest.mark.parametrize(
    ("field", "value"),
    [("verdict", "rejected"), ("received_at", "2024-05-02T10:30:00Z"), ("parcel_id", "EP-2")],
)
def test_altered_receipt_is_refused(jpo: OfficeKeys, receipt: dict, field: str, value: str) -> None:
    signature = sign_receipt(receipt, jpo.signing_key)
    with pytest.raises(SignatureError):
        verify_receipt({**receipt, field: value}, signature, jpo.verify_key)


def test_receipt_signed_by_another_office_is_refused(
    epo: OfficeKeys, jpo: OfficeKeys, receipt: dict
) -> None:
    with pytest.raises(SignatureError):
        verify_receipt(receipt, sign_receipt(receipt, epo.signing_key), jpo.verify_key)


def test_manifest_and_receipt_signatures_are_not_interchangeable(
    jpo: OfficeKeys, receipt: dict
) -> None:
    as_manifest = sign_manifest(receipt, jpo.signing_key)
    with pytest.raises(SignatureError):
        verify_receipt(receipt, as_manifest, jpo.verify_key)
    with pytest.raises(SignatureError):
        verify_manifest(receipt, sign_receipt(receipt, jpo.signing_key), jpo.verify_key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "not one of"),
        ({"manifest_sha256": "ABC"}, "64 lowercase hex"),
        ({"receiver_office": ""}, "non-empty string"),
    ],
)
def test_malformed_receipt_is_rejected(
    jpo: OfficeKeys, receipt: dict, change: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sign_receipt({**receipt, **change}, jpo.signing_key)


def test_receipt_missing_a_field_is_rejected(jpo: OfficeKeys, receipt: dict) -> None:
    signature = sign_receipt(receipt, jpo.signing_key)
    incomplete = {k: v for k, v in receipt.items() if k != "verdict"}
    with pytest.raises(ValueError, match="missing field.*verdict"):
        verify_receipt(incomplete, signature, jpo.verify_key)


def test_receipt_requires_timezone_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_receipt(
            parcel_id="p",
            manifest_sha256="0" * 64,
            received_at=datetime(2024, 5, 1, 10, 0),
            receiver_office="JP",
            verdict="accepted",
        )


# --------------------------------------------------------------- private keys at rest


@pytest.fixture(scope="module")
def salt() -> bytes:
    return new_kek_salt()


@pytest.fixture(scope="module")
def kek(salt: bytes) -> bytes:
    return derive_kek("correct horse battery staple", salt)


def test_kek_is_reproducible_from_secret_and_salt(kek: bytes, salt: bytes) -> None:
    assert len(kek) == 32
    assert derive_kek("correct horse battery staple", salt) == kek
    assert derive_kek("correct horse battery staple", new_kek_salt()) != kek


def test_wrapped_keys_round_trip(epo: OfficeKeys, kek: bytes) -> None:
    blob = wrap_private_keys(epo, kek)
    assert bytes(epo.encryption_key) not in blob and bytes(epo.signing_key) not in blob

    restored = unwrap_private_keys(blob, kek)

    assert bytes(restored.encryption_key) == bytes(epo.encryption_key)
    assert bytes(restored.signing_key) == bytes(epo.signing_key)
    assert restored.signing_fingerprint == epo.signing_fingerprint
    # The restored keys actually work: they verify and open what the originals made.
    verify_manifest({"a": 1}, sign_manifest({"a": 1}, restored.signing_key), epo.verify_key)
    file_key = generate_file_key()
    assert open_sealed_key(seal_key(file_key, epo.encryption_public), restored) == file_key


def test_wrong_secret_cannot_unwrap(epo: OfficeKeys, kek: bytes, salt: bytes) -> None:
    blob = wrap_private_keys(epo, kek)
    with pytest.raises(KeyUnwrapError, match="key-encryption secret"):
        unwrap_private_keys(blob, derive_kek("Correct horse battery staple", salt))


def test_damaged_wrapped_blob_cannot_unwrap(epo: OfficeKeys, kek: bytes) -> None:
    blob = bytearray(wrap_private_keys(epo, kek))
    blob[30] ^= 0x01
    with pytest.raises(KeyUnwrapError):
        unwrap_private_keys(bytes(blob), kek)


def test_kek_derivation_rejects_bad_input(salt: bytes) -> None:
    with pytest.raises(ValueError, match="empty"):
        derive_kek("", salt)
    with pytest.raises(ValueError, match="salt"):
        derive_kek("secret", b"short")


def test_private_keys_do_not_show_in_repr(epo: OfficeKeys) -> None:
    text = repr(epo)
    assert bytes(epo.signing_key).hex() not in text
    assert base64.b64encode(bytes(epo.signing_key)).decode() not in text


# ------------------------------------------------------------- public key exchange


def test_public_export_is_json_and_imports_back(epo: OfficeKeys) -> None:
    record = json.loads(json.dumps(export_public(epo, "EP")))
    assert record["office"] == "EP"
    assert record["ed25519_fingerprint"] == epo.signing_fingerprint
    assert "private" not in json.dumps(record).lower()

    imported = import_public(record)

    assert imported.office == "EP"
    assert bytes(imported.encryption_public) == bytes(epo.encryption_public)
    assert bytes(imported.verify_key) == bytes(epo.verify_key)
    assert imported.encryption_fingerprint == epo.encryption_fingerprint


def _other_key_b64() -> str:
    return base64.b64encode(bytes(generate_office_keys().verify_key)).decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"office": ""}, "'office' is missing"),
        ({"office": None}, "'office' is missing"),
        ({"version": 2}, "unsupported version"),
        ({"x25519": "@@not base64@@"}, "'x25519' is not valid base64"),
        ({"ed25519": base64.b64encode(b"x" * 31).decode()}, "'ed25519' must decode to 32"),
        ({"x25519": base64.b64encode(bytes(32)).decode()}, "all zeros"),
        ({"ed25519": None}, "'ed25519' is missing"),
        ({"ed25519_fingerprint": None}, "'ed25519_fingerprint' is missing"),
        ({"ed25519": _other_key_b64()}, "does not match"),
    ],
    ids=[
        "empty-office",
        "no-office",
        "version",
        "bad-base64",
        "short-key",
        "zero-key",
        "no-key",
        "no-fingerprint",
        "replaced-key",
    ],
)
def test_import_rejects_bad_public_key_records(epo: OfficeKeys, change: dict, message: str) -> None:
    record = {**export_public(epo, "EP"), **change}
    with pytest.raises(ValueError, match=message):
        import_public(record)


def test_import_rejects_swapped_keys(epo: OfficeKeys) -> None:
    record = export_public(epo, "EP")
    record["x25519"], record["ed25519"] = record["ed25519"], record["x25519"]
    with pytest.raises(ValueError, match="fingerprint' does not match"):
        import_public(record)


def test_import_rejects_non_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        import_public(["EP"])  # type: ignore[arg-type]
