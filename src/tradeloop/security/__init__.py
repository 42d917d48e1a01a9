"""Security: the encrypted key store for exchange credentials and the hash-chained audit log."""
