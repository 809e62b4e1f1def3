"""``aesdata ingest`` and ``aesdata dupes`` (filled in by the ingest stage)."""
