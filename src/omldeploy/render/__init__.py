"""Rendering: placement → per-host bundles of units, env files, configs, certificates."""
