# Sourced by the scripts: where each environment's requirements live and where its venv goes.
# An environment is one image's Python world (they pin conflicting transformers versions).
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${CHRONOTICK_VENVS:-$ROOT/.venvs}"
PYTHON="${CHRONOTICK_PYTHON:-python3.11}"

env_dir() {  # the folder whose requirements.{in,lock} define environment $1
  case "$1" in
    core) echo "$ROOT/shared" ;;
    chronos|ttm|toto|timemoe) echo "$ROOT/services/$1" ;;
    gateway) echo "$ROOT/gateway" ;;
    integration) echo "$ROOT/tests/integration" ;;
    *) echo "unknown environment '$1' (known: $ALL_ENVS)" >&2; return 2 ;;
  esac
}

env_packages() {  # editable project packages installed into environment $1
  case "$1" in
    core|integration) echo "$ROOT/shared" ;;
    *) echo "$ROOT/shared $(env_dir "$1")" ;;
  esac
}

# The locks pin PyTorch's CPU build (torch==X+cpu); plain PyPI has only the multi-GB CUDA one.
# Prints the pip option that adds PyTorch's CPU index, unless pip finds that pinned wheel without it
# (here: the machine's local wheels; no network is tried then). A fresh machine with internet gets
# the index. Override the index with CHRONOTICK_TORCH_INDEX.
torch_index_option() {
  local pin
  pin="$(grep -h '^torch==' "$ROOT"/services/*/requirements.lock | head -1)"
  if [ -n "$pin" ] && ! "$PYTHON" -m pip install --dry-run --no-deps --ignore-installed -q "$pin" >/dev/null 2>&1; then
    echo "--extra-index-url=${CHRONOTICK_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
}

free_gib() {  # whole GiB free on the filesystem holding path $1
  df --output=avail -BG "$1" | tail -1 | tr -dc 0-9
}

# integration: the tests against the fleet's live containers (no model libraries; docker-compose).
ALL_ENVS="core chronos ttm toto timemoe gateway integration"
