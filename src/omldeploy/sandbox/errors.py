"""Errors the sandbox reports to an operator as a plain message (no traceback)."""


class SandboxError(Exception):
    """A failure the operator can act on: the message says what happened and what to do."""
