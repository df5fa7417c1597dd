"""The user-facing error family: a message naming the file or config key and the fix.

Jobs and the CLI print these as one line, without a traceback; anything else is a bug.
"""


class DdflowError(ValueError):
    """A problem with the user's input or files, not with ddflow."""


class ConfigError(DdflowError):
    """A config problem, with the offending key in the message."""
