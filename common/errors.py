"""User mistakes become one line on stderr and exit code 2, never a traceback; so does Ctrl-C."""
import functools
import os
import sys


class UserError(Exception):
    """A problem the user can fix (bad path, bad file, bad config value): the message says where."""


EXIT_USER_ERROR = 2


def exit_on_user_error(main):
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if "common.startup" in sys.modules:  # the script's own code runs: Ctrl-C is a KeyboardInterrupt again
            sys.modules["common.startup"].started()
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:  # Ctrl-C outside the places that handle it (e.g. while loading data)
            print("\ninterrupted", file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
            # Point stdout at devnull so the interpreter's final flush does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
    return wrapper
