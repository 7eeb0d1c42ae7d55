"""The REST API (/api/v1/) and what both APIs share: the API keys and how a request proves who it is."""
