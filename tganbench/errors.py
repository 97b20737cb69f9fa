"""The one exception type that means "the user asked for something invalid"."""


class UsageError(Exception):
    """Bad user input: the CLI prints the message as one line and exits with code 2."""
