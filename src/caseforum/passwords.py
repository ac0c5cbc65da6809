"""Password hashing: argon2id, with its cost chosen by one setting.

Deployments use argon2's RFC 9106 low-memory profile.  The test suite sets
``password_hash_profile = "test"`` (argon2's cheapest parameters) so that the
hundreds of log-ins it performs take microseconds instead of a second of CPU
each.  A hash carries its own parameters, so a hash made under one profile
still verifies under the other (and is upgraded at the next log-in).

Nothing is hashed at import: the dummy hash that keeps a log-in for an
unknown user as slow as one for a known user is made on first use.
"""

from __future__ import annotations

from argon2 import PasswordHasher, profiles

PROFILES = {
    "standard": profiles.RFC_9106_LOW_MEMORY,
    "test": profiles.CHEAPEST,
}

_profile = "standard"
_hasher: PasswordHasher | None = None
_dummy: str | None = None


def configure(profile: str) -> None:
    """Use ``profile`` (a key of :data:`PROFILES`) from now on in this process."""
    global _profile, _hasher, _dummy
    if profile not in PROFILES:
        raise ValueError(f"unknown password hash profile {profile!r}")
    if profile != _profile:
        _profile, _hasher, _dummy = profile, None, None


def hasher() -> PasswordHasher:
    global _hasher
    if _hasher is None:
        _hasher = PasswordHasher.from_parameters(PROFILES[_profile])
    return _hasher


def dummy_hash() -> str:
    """A hash to verify against when there is no user, at the same cost."""
    global _dummy
    if _dummy is None:
        _dummy = hasher().hash("timing-equaliser")
    return _dummy
