"""Evaluate a saved checkpoint from the command line: `python eval.py ckpt_path=<file> [split=val|test] [data=<name>]
[data.<key>=<value> ...]` (the work is done by `arnn.runs.evaluate`). Mistakes end in one line `error: ...` and exit 1.
"""

import sys

from arnn.errors import UserError, find_user_error

if __name__ == "__main__":
    try:
        from arnn.runs.evaluate import evaluate

        evaluate(sys.argv[1:])
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        sys.exit(f"error: {user_error}")
