"""The one exception type that means "the user asked for something that cannot be done".

Stages raise `UserError` with a message that fits on one line and says what to change; the
command-line layer prints it as `error: <message>` and exits non-zero without a traceback.
Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input (bad path, unknown name, malformed spec, wrong checkpoint)."""
