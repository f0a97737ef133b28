"""`python -m devtools.onramp <verb>`: see devtools/onramp/commands.py."""

import os
import sys

from devtools.onramp.commands import main

if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # `... | head`: the reader has what it wanted; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(int(code))
