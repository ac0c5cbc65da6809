"""Web layer: routers for pages, API and websockets."""
