"""Plugin entry point (group ``caseforum``): settings under ``plugins.ice_exchange``.

The workflow, routes and pages arrive with the ICE issue; the crypto core
(``crypto``, ``audit_chain``) is complete and tested.
"""

from pydantic import BaseModel, Field


class Config(BaseModel):
    """``[plugins.ice_exchange]`` in the settings file."""

    model_config = {"extra": "forbid"}

    key_encryption_secret: str | None = Field(
        default=None, min_length=16,
        description="protects the offices' private keys; defaults to the instance secret",
    )
    max_parcel_mb: int = Field(default=500, ge=1, le=10_000)
