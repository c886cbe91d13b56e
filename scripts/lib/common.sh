# shellcheck shell=bash
# Shared helpers for scripts/bootstrap.sh and scripts/test.sh. Source it; do not run it.
#
# Everything these scripts write stays inside the checkout (.venv, .cache, build) except
# ~/.ansible (ansible-test's cache and sanity virtual environments, Ansible's tmp) and /tmp.

# Repository root = collection root (this file lives in scripts/lib/).
FF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
FF_VENV="$FF_ROOT/.venv"
FF_PY="$FF_VENV/bin/python"
FF_BUILD="$FF_ROOT/build"
# The collection as shipped (galaxy.yml build_ignore applied) is staged here, so that
# ansible-test finds it under .../ansible_collections/fate/flow and Ansible finds fate.flow.*
FF_COLLECTIONS="$FF_BUILD"
FF_STAGE="$FF_COLLECTIONS/ansible_collections/fate/flow"
# Python version the controller tooling is pinned for (requirements/dev.txt, ansible-core 2.19).
FF_PYTHON_VERSION="3.11"
# What ansible.cfg's collections_path says, for tools started outside the repository root.
FF_ANSIBLE_COLLECTIONS_PATH="$FF_COLLECTIONS:${HOME:-}/.ansible/collections:/usr/share/ansible/collections"

export FF_ROOT FF_VENV FF_PY FF_BUILD FF_COLLECTIONS FF_STAGE FF_PYTHON_VERSION FF_ANSIBLE_COLLECTIONS_PATH

# Keep pip's, ansible-lint's and other tools' caches inside the checkout (.cache/ is gitignored).
export XDG_CACHE_HOME="$FF_ROOT/.cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ "${CI:-}" = "true" ] || [ ! -t 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
fi

ff_log() { printf '%s\n' "$*" >&2; }
ff_warn() { printf 'WARNING: %s\n' "$*" >&2; }
ff_die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

ff_banner() {
  local line="================================================================================"
  printf '\n%s\n== %s\n%s\n' "$line" "$*" "$line"
}

# Seconds since the epoch (integer); bash 5 has EPOCHREALTIME but keep it portable.
ff_now() { date +%s; }

# Run a command as root: directly when root, through passwordless sudo when available.
# Returns 127 when neither is possible.
ff_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
  else
    return 127
  fi
}

ff_can_be_root() {
  [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; }
}

# Put the venv first on PATH so ansible-test finds python3.11, ansible-lint finds ansible, etc.
ff_activate() {
  [ -x "$FF_PY" ] || ff_die "$FF_VENV is missing: run scripts/bootstrap.sh (or: make bootstrap)"
  export VIRTUAL_ENV="$FF_VENV"
  case ":$PATH:" in
    *":$FF_VENV/bin:"*) ;;
    *) export PATH="$FF_VENV/bin:$PATH" ;;
  esac
}

# Stage the collection as shipped into build/ansible_collections/fate/flow.
ff_stage() {
  "$FF_PY" "$FF_ROOT/scripts/lib/stage_collection.py" --source "$FF_ROOT" --dest "$FF_STAGE"
}
