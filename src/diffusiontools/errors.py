"""The one exception type of the library: bad input from the user, in one sentence."""


class DiffusionToolsError(ValueError):
    """Bad input from the user: a config value, an argument, a file, a flag.

    The message is one sentence that names the bad value (the config key or the argument) and
    says what is allowed. A ``ValueError``, so code that handles bad values handles these too; the
    CLI prints the message on one line and exits with status 2 (``--debug`` shows a traceback).
    """


UserError = DiffusionToolsError  # the name the modules use inside the package
