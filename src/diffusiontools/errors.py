"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: a config value, a file, a flag.

    The message is one sentence that names the bad value and says what is allowed; the CLI prints
    it without a traceback (``--debug`` shows one).
    """
