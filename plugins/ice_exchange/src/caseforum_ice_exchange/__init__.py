"""ICE exchange plugin: signed, encrypted document parcels between patent offices."""
