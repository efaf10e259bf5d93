"""One folder per component; see base.py for what a component declares."""
