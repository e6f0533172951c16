"""The one exception type the deploy reports as a one-line per-host reason."""


class DeployError(Exception):
    """A failure with a message meant for the user, shown as-is (no traceback)."""
