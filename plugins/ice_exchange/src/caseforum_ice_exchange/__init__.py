"""ICE exchange plugin: signed, encrypted document parcels between patent offices."""

__version__ = "0.1.0"
