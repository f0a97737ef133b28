"""`python -m app.run_all "[NAME=]CMD" ...`: run commands as one unit (`make run`: web + worker).

Each child runs in its own process group, so a Ctrl-C in the terminal reaches this supervisor
only, which turns it into a graceful SIGTERM for every child (gunicorn finishes its requests, the
worker its jobs in flight). A second Ctrl-C or SIGTERM kills them. If a child exits by itself,
the others are stopped the same way and the supervisor exits non-zero. On Linux the children
also get SIGTERM if the supervisor itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys
import time

from app.observability import configure_logging

log = logging.getLogger("app.run_all")

_PR_SET_PDEATHSIG = 1


def _own_group_and_parent_death_signal() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Child:
    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(command, preexec_fn=_own_group_and_parent_death_signal)

    def send(self, signum: int, *, group: bool = False) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.process.pid, signum)
            else:
                os.kill(self.process.pid, signum)


def supervise(commands: dict[str, list[str]], poll_seconds: float = 0.2) -> int:
    """Run `commands` (name -> argv) until a signal or until one exits; returns the exit code."""
    configure_logging()
    signals: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: signals.append(received))

    children = [_Child(name, command) for name, command in commands.items()]
    log.info(
        "started %s",
        ", ".join(f"{c.name} (pid {c.process.pid})" for c in children),
        extra={"event": "run_all.started", "children": {c.name: c.process.pid for c in children}},
    )
    stopping = killed = failed = False
    while any(c.process.poll() is None for c in children):
        if signals and not stopping:
            log.info("%s: stopping %s", signal.Signals(signals[0]).name, ", ".join(c.name for c in children))
            stopping = True
            for child in children:
                child.send(signal.SIGTERM)
        elif len(signals) > 1 and not killed:
            log.warning("second signal: killing %s", ", ".join(c.name for c in children))
            killed = True
            for child in children:
                child.send(signal.SIGKILL, group=True)
        if not stopping:
            for child in children:
                code = child.process.poll()
                if code is not None:
                    log.error("%s exited (%s): stopping the others", child.name, code)
                    stopping = failed = True
                    for other in children:
                        other.send(signal.SIGTERM)
                    break
        time.sleep(poll_seconds)

    codes = {c.name: c.process.returncode for c in children}
    log.info("all stopped", extra={"event": "run_all.stopped", "exit_codes": codes})
    if failed or killed:
        return 1
    return 0 if all(code == 0 for code in codes.values()) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print('usage: python -m app.run_all "[NAME=]COMMAND" ...', file=sys.stderr)
        return 2
    commands: dict[str, list[str]] = {}
    for arg in argv:
        name, sep, command = arg.partition("=")
        if not sep or not name.isidentifier():
            name, command = "", arg
        argv_ = shlex.split(command)
        commands[name or f"{os.path.basename(argv_[0])}-{len(commands) + 1}"] = argv_
    return supervise(commands)


if __name__ == "__main__":
    raise SystemExit(main())
