"""One module per operation (install, status, ...): orchestration only."""
