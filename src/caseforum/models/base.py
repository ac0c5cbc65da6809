"""Shared column helpers, and how the model classes are built."""

from datetime import UTC, datetime

from sqlmodel import SQLModel

# Each table class would otherwise build its pydantic validator when it is defined:
# about a fifth of the time the models take to import, on every start, for validators
# that rows read from the database never use.  They are built on first use instead.
# (Set here, before any model class is defined: every module of models imports this.)
SQLModel.model_config["defer_build"] = True


def utcnow() -> datetime:
    """Aware UTC now: SQLModel's datetime columns store and return UTC."""
    return datetime.now(UTC)
