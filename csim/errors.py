"""One exception type for every refusal csim makes: its message is one paragraph that names the file, line or field
and says what would fix it. The CLI prints it without a traceback."""


class CsimError(Exception):
    """A user-facing error: bad input, missing data, an impossible configuration."""
