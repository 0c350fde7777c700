#!/usr/bin/env bash
# On a node without network that has its own torch (any supported version, e.g. a cluster's module): install the
# wheelhouse made by `make wheelhouse PY=<the node's Python>` into a private folder, with no index and no dependency
# resolution (its list is complete; what torch requires comes with the node's torch), and run the doctor on the
# node's torch. Afterwards `source <folder>/activate.sh` runs train.py and pytest the same way.
#
#   scripts/offline_node.sh [WHEELHOUSE] [doctor options...]     (default WHEELHOUSE: wheelhouse/ of this checkout)
#   PYTHON=python3.12 ARNN_SITE=/scratch/arnn-site scripts/offline_node.sh wheelhouse --budget-s 300
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
wheelhouse="$(cd "${1:-$checkout/wheelhouse}" && pwd)"
shift $(( $# > 0 ? 1 : 0 ))
python="${PYTHON:-python3}"
site="${ARNN_SITE:-$checkout/.offline-site}"

if ! "$python" -c "import torch" 2>/dev/null; then
    echo "error: $python cannot import torch; load the node's torch (e.g. module load pytorch) or set PYTHON" >&2
    exit 1
fi
if [ ! -f "$wheelhouse/requirements.txt" ]; then
    echo "error: $wheelhouse has no requirements.txt; make it with make wheelhouse PY=<the node's Python version>" >&2
    exit 1
fi
"$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --find-links "$wheelhouse" \
    --target "$site" --upgrade -r "$wheelhouse/requirements.txt"
cat > "$site/activate.sh" <<ACTIVATE
# Puts the wheelhouse's packages and arnn's src/ before the node's own packages (its torch stays the node's).
export PYTHONPATH="$site:$checkout/src\${PYTHONPATH:+:\$PYTHONPATH}"
export WANDB_MODE="\${WANDB_MODE:-offline}"
ACTIVATE
# shellcheck source=/dev/null
source "$site/activate.sh"
cd "$checkout"
exec "$python" -m arnn.doctor "$@"
