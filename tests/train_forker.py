"""Starts ``drama-wm train`` processes for tests/test_fault_injection.py without paying the imports each time.

Run as ``python tests/train_forker.py``: it imports drama_wm's command line and torch once (seconds on a small CPU),
then reads one JSON request per line from stdin, ``{"argv": [...], "log": path}``, forks a child that runs
``drama_wm.cli.main(argv)`` exactly as the ``drama-wm`` console script does (``sys.exit(main())``) with its output in
``log``, and answers ``{"pid": n}`` at once, then ``{"pid": n, "exit": code}`` when the child has ended (``code`` as
``subprocess`` reports it: negative for a signal, e.g. -9 for SIGKILL). The child is a process of its own: the test
sends it real signals.
"""

from __future__ import annotations

import json
import os
import sys

import torch  # noqa: F401  (the slow imports, done once before any fork)

import drama_wm.cli
import drama_wm.driver  # the agent's imports, also before any fork


def _child(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        code = drama_wm.cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # an uncaught error: report it like Python would, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request["argv"], request["log"])
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
