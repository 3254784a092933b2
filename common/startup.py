"""Imported first by the entry scripts: Ctrl-C while they start (imports take seconds, then Hydra
composes the config) ends in one line and exit code 130, not a KeyboardInterrupt traceback from
inside some library. exit_on_user_error (common/errors.py) hands Ctrl-C back to Python once the
script's own code runs, where the places that handle it (the training loop, the prompt) expect it."""
import signal
import sys
from pathlib import Path

from common.paths import PROJECT_ROOT

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process Ctrl-C ended


def _interrupted_while_starting(_signum, _frame):
    print("\ninterrupted", file=sys.stderr)
    sys.exit(INTERRUPTED)


def started():
    """From here on Ctrl-C raises KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _running_an_entry_script() -> bool:
    """True when the interpreter runs train.py or evaluate.py, not when a test imports them."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is not None and Path(main_file).resolve().parent == PROJECT_ROOT


if _running_an_entry_script():
    signal.signal(signal.SIGINT, _interrupted_while_starting)
