"""Plugin entry point (group ``caseforum``): settings under ``plugins.opd_link``.

The dossier source itself arrives with the One Portal Dossier issue; this
module already validates its settings at start-up so that a typo in the
settings file is reported against the right field.
"""

from pydantic import BaseModel, Field, HttpUrl


class Config(BaseModel):
    """``[plugins.opd_link]`` in the settings file."""

    model_config = {"extra": "forbid"}

    base_url: HttpUrl = HttpUrl("http://127.0.0.1:8765")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
