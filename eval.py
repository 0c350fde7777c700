"""Evaluate a saved checkpoint from the command line: `python eval.py ckpt_path=<file> [split=val|test] [data=<name>]
[data.<key>=<value> ...]` (the work is done by `arnn.runs.evaluate`). Mistakes end in one line `error: ...` and exit 1.
"""

import sys

from arnn.errors import exit_on_user_error

if __name__ == "__main__":
    from arnn.runs.evaluate import evaluate

    exit_on_user_error(evaluate, sys.argv[1:])
