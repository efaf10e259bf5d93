"""Release catalog and image references (data files bundled with the package)."""
