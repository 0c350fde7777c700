#!/usr/bin/env bash
# One full-scale table row to its end, then the rows report refreshed with it (`make row` starts this in the
# background). Started again after a kill or on a new machine, train.py's resume=true continues from last.ckpt.
#
#   scripts/row.sh PYTHON RUN_DIR [train.py overrides...]      e.g. scripts/row.sh .venv/bin/python results/x experiment=...
set -euo pipefail
python="$1"
run_dir="$2"
shift 2
"$python" train.py logger=csv resume=true "hydra.run.dir=$run_dir" callbacks.rich_progress_bar=null \
    trainer.enable_progress_bar=false "$@"
"$python" -m arnn.rows_report "$(dirname "$run_dir")"
