"""The one exception type that reaches a user as a one-line message."""


class CnnsheetError(ValueError):
    """Bad input from a user: a photo, a model file, an option. The message names it and why."""
