"""The one exception type users see: a message that names the file or key and the fix.

The CLI catches `RobinterpError` and prints `error: <message>` with exit status 2, so bad input
never ends in a deep traceback.
"""


class RobinterpError(Exception):
    """A user-facing error: bad input, bad config, missing or corrupt file."""
