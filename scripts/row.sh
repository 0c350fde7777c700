#!/usr/bin/env bash
# One full-scale table row to its end, then the rows report refreshed with it (`make row` starts this in the
# background). Started again after a kill or on a new machine, train.py's resume=true continues from last.ckpt.
# Paths are relative to the checkout.
#
#   scripts/row.sh PYTHON RUN_DIR [train.py overrides...]
#   scripts/row.sh .venv/bin/python results/paper_pmnist_arnn experiment=paper/pmnist/arnn data.data_dir=data
set -euo pipefail
cd "$(dirname "$0")/.."
python="$1"
run_dir="$2"
shift 2
"$python" train.py logger=csv resume=true "hydra.run.dir=$run_dir" callbacks.rich_progress_bar=null \
    trainer.enable_progress_bar=false "$@"
"$python" -m arnn.rows_report "$(dirname "$run_dir")"
