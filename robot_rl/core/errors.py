"""Errors meant for users: one sentence naming the file/field/value and what was expected."""


class RobotRLError(Exception):
    """Base class of every error the CLI prints as a one-line message instead of a traceback."""


class ConfigError(RobotRLError, ValueError):
    """A config key, value or file is wrong."""


class DatasetError(RobotRLError):
    """A dataset is missing, truncated, corrupt or inconsistent."""
