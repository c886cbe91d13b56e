#!/usr/bin/env bash
# Prepare this checkout for the sandbox and the tests. Idempotent; a second run takes seconds.
#
#   scripts/bootstrap.sh [--no-apt] [--force]
#
#   1. Debian packages the sandbox and the tests use (apt-get, as root or through passwordless
#      sudo; otherwise the missing ones are listed and the step is skipped).
#   2. .venv with Python 3.11 and requirements/dev.txt (skipped while the requirements file and
#      the interpreter are unchanged: .venv/.bootstrap-stamp).
#   3. ansible-test's pip bootstrap script, replaced by an offline stand-in
#      (~/.ansible/test/cache/get_pip_<pip version>.py, see scripts/lib/get_pip_standin.py).
#
# Environment: PYTHON=<interpreter> to choose the Python 3.11 used for .venv;
#              FF_SKIP_APT=1 is the same as --no-apt; CI=true implies non-interactive apt.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

skip_apt="${FF_SKIP_APT:-0}"
force=0
for arg in "$@"; do
  case "$arg" in
    --no-apt) skip_apt=1 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) ff_die "unknown argument: $arg (see --help)" ;;
  esac
done

started="$(ff_now)"
cd "$FF_ROOT"

# Debian packages: what the sandbox and the tests run (sshd, ZooKeeper + its JRE, rsync, process
# and socket tools), what the scripts use (git, make, curl) and shellcheck for the lint stage.
APT_PACKAGES=(
  ca-certificates git make curl rsync procps iproute2 lsof
  openssh-server openssh-client
  zookeeper
  shellcheck
  # The sandbox's party hosts are reached over SSH and run the modules with Debian's /usr/bin/python3,
  # as a FATE host would: what the modules need on the managed host (docs/pipeline.md).
  python3 python3-requests python3-yaml python3-kazoo
)

# ---------------------------------------------------------------------------- Python 3.11 choice
python_version_of() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3 "python$FF_PYTHON_VERSION" "/usr/bin/python$FF_PYTHON_VERSION" /usr/bin/python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if [ "$(python_version_of "$candidate")" = "$FF_PYTHON_VERSION" ]; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

python_can_venv() {
  "$1" -c 'import ensurepip, venv' >/dev/null 2>&1
}

venv_ok() {
  [ -x "$FF_PY" ] && [ -f "$FF_VENV/pyvenv.cfg" ] && [ "$(python_version_of "$FF_PY")" = "$FF_PYTHON_VERSION" ]
}

# ---------------------------------------------------------------------------- 1. Debian packages
missing_packages() {
  local pkg status
  local -A installed=()
  while read -r pkg status; do
    case "$status" in ii*) installed["${pkg%%:*}"]=1 ;; esac
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
  for pkg in "$@"; do
    [ -n "${installed[$pkg]:-}" ] || printf '%s\n' "$pkg"
  done
}

apt_lists_fresh() {
  # Package lists exist and are younger than 6 hours.
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 -print -quit 2>/dev/null)" ]
}

apt_install() {
  local apt=(apt-get -y -q -o Dpkg::Use-Pty=0)
  if ! apt_lists_fresh; then
    ff_log "apt-get update"
    ff_as_root "${apt[@]}" update
  fi
  ff_log "apt-get install --no-install-recommends $*"
  if ! ff_as_root "${apt[@]}" install --no-install-recommends "$@"; then
    ff_log "install failed; refreshing package lists and retrying once"
    ff_as_root "${apt[@]}" update
    ff_as_root "${apt[@]}" install --no-install-recommends "$@"
  fi
}

wanted=("${APT_PACKAGES[@]}")
if py="$(pick_python)"; then
  if ! python_can_venv "$py"; then
    # Debian's interpreter needs python3-venv for ensurepip (pyenv builds bring their own).
    wanted+=(python3-venv "python$FF_PYTHON_VERSION-venv")
  fi
else
  py=""
  wanted+=(python3 python3-venv)
fi

if [ "$skip_apt" = 1 ]; then
  ff_log "system packages: skipped (--no-apt)"
elif ! command -v dpkg-query >/dev/null 2>&1; then
  ff_warn "not a Debian system (no dpkg-query): install these yourself: ${wanted[*]}"
else
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  if [ "${#missing[@]}" -eq 0 ]; then
    ff_log "system packages: all present"
  elif ff_can_be_root; then
    apt_install "${missing[@]}"
  else
    ff_warn "not root and no passwordless sudo: skipping apt. Missing Debian packages:"
    ff_warn "  ${missing[*]}"
    ff_warn "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    ff_warn "(the sandbox and some tests need them; the rest of the bootstrap continues)"
  fi
fi

# ---------------------------------------------------------------------------- 2. .venv
if [ -z "$py" ]; then
  py="$(pick_python)" || ff_die "no Python $FF_PYTHON_VERSION found (tried \$PYTHON, python3, python$FF_PYTHON_VERSION, /usr/bin/python3)"
fi

if ! venv_ok; then
  if [ -e "$FF_VENV" ]; then
    ff_log "$FF_VENV is not a working Python $FF_PYTHON_VERSION virtual environment: recreating it"
    rm -rf -- "$FF_VENV"
  fi
  python_can_venv "$py" || ff_die "$py cannot create virtual environments (install python3-venv)"
  ff_log "creating $FF_VENV with $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
  "$py" -m venv "$FF_VENV"
fi

stamp_file="$FF_VENV/.bootstrap-stamp"
stamp="$(sha256sum "$FF_ROOT/requirements/dev.txt" | cut -d' ' -f1) $("$FF_PY" -c 'import sys; print(sys.version.split()[0])')"
if [ "$force" = 1 ] || [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp" ]; then
  ff_log "pip install -r requirements/dev.txt"
  "$FF_PY" -m pip install --progress-bar off -q -r "$FF_ROOT/requirements/dev.txt"
  printf '%s\n' "$stamp" > "$stamp_file"
else
  ff_log "python requirements: up to date ($(basename "$stamp_file"))"
fi

# ---------------------------------------------------------------------------- 3. ansible-test pip bootstrap
pip_version="$("$FF_PY" - <<'EOF' 2>/dev/null || true
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version='3.11'))['pip'])
EOF
)"
if [ -z "$pip_version" ]; then
  # Fallback: read the pinned default straight from the source.
  pip_version="$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" \
    "$("$FF_PY" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n 1)"
fi
[ -n "$pip_version" ] || ff_die "could not find the pip version ansible-test pins"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if ! cmp -s "$FF_ROOT/scripts/lib/get_pip_standin.py" "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$FF_ROOT/scripts/lib/get_pip_standin.py" "$get_pip"
  ff_log "ansible-test pip $pip_version bootstrap: installed stand-in $get_pip"
else
  ff_log "ansible-test pip $pip_version bootstrap: stand-in present"
fi

ff_log "bootstrap done in $(( $(ff_now) - started ))s"
