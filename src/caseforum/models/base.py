"""Shared column helpers."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC now: SQLModel's datetime columns store and return UTC."""
    return datetime.now(UTC)
