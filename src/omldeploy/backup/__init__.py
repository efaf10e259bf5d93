"""Backups of a tenant in its bucket: ids, object layout, manifests, catalog and retention.

Pure controller-side logic (no I/O): the host side is `apply/ansible/library/omldeploy_backup.py`,
the operations are `ops/backup.py` and `ops/restore.py`.
"""
