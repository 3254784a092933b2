"""SIGINT/SIGTERM become a request to stop at the next step boundary, so the loop can save a
resumable checkpoint instead of dying mid-step (preemption, Ctrl-C, `scancel`, `kill`)."""
import signal


class StopRequest:
    def __init__(self):
        self.signal_name = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        """Puts the previous handlers back (a multirun starts the next job in the same process)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame):
        if self.signal_name is not None:  # a second Ctrl-C: the user does not want to wait
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.signum = signum

    def __bool__(self):
        return self.signal_name is not None
