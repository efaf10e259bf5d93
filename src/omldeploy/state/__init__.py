"""Per-tenant operational state on the controller: lock, ledger, run logs (secrets redacted)."""
