# Sourced by the scripts: where each environment's requirements live and where its venv goes.
# An environment is one image's Python world (they pin conflicting transformers versions).
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${CHRONOTICK_VENVS:-$ROOT/.venvs}"
PYTHON="${CHRONOTICK_PYTHON:-python3.11}"

# The model families, one a line: `name environment port package` (shared/chronotick/families.toml
# declares them). Needs Python 3.11, so only the scripts that need a family call it.
family_table() {
  PYTHONPATH="$ROOT/shared" "$PYTHON" -m chronotick.families
}

family_names() {
  family_table | cut -d' ' -f1 | paste -sd' '
}

family_environments() {
  family_table | cut -d' ' -f2 | paste -sd' '
}

# integration: the tests against the fleet's live containers (no model libraries; docker-compose).
# lint: ruff and mypy, with the types of what the gateway and the runtime core import.
all_envs() {
  echo "core $(family_environments) gateway integration lint"
}

env_dir() {  # the folder whose requirements.{in,lock} define environment $1
  local table name environment _
  case "$1" in
    core) echo "$ROOT/shared"; return ;;
    gateway) echo "$ROOT/gateway"; return ;;
    integration) echo "$ROOT/tests/integration"; return ;;
    lint) echo "$ROOT/tests/lint"; return ;;
  esac
  # (read whole first: leaving the loop early must not cut the reader off mid-write)
  table="$(family_table)"
  while read -r name environment _; do
    [ "$environment" != "$1" ] || { echo "$ROOT/services/$name"; return; }
  done <<<"$table"
  echo "unknown environment '$1' (known: $(all_envs))" >&2
  return 2
}

env_packages() {  # editable project packages installed into environment $1
  case "$1" in
    core|integration) echo "$ROOT/shared" ;;
    lint) echo "$ROOT/shared $ROOT/gateway" ;;
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
