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

free_gib() {  # whole GiB free on the filesystem holding path $1
  df --output=avail -BG "$1" | tail -1 | tr -dc 0-9
}

# integration: the tests against the fleet's live containers (no model libraries; docker-compose).
ALL_ENVS="core chronos ttm toto timemoe gateway integration"
