"""The LoadMaster-compatible API: /access/<command> (XML) and /accessv2 (JSON)."""
