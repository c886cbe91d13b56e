#!/usr/bin/env bash
# THE test command (`make test` runs scripts/bootstrap.sh, then this). Stages:
#
#   sanity       ansible-test sanity --local --python 3.11, on the collection as shipped
#   units        ansible-test units (tests/unit/); passes with a note while there are none
#   integration  pytest tests/sandbox (against the sandbox federation), then
#                ansible-test integration --local when tests/integration/targets has targets
#   lint         ansible-lint --offline --profile production (+ shellcheck of the scripts)
#
#   scripts/test.sh [STAGE ...]        default: all four, in that order
#
# Every selected stage runs even when an earlier one fails; the exit status is non-zero when any
# stage failed. The collection is first staged as it ships (galaxy.yml build_ignore applied) into
# build/ansible_collections/fate/flow; ansible-test and ansible-lint run there.
#
# Environment:
#   FF_SANITY_ARGS       extra arguments for ansible-test sanity, e.g. "--test pep8"
#   FF_UNITS_ARGS        extra arguments for ansible-test units
#   FF_INTEGRATION_ARGS  extra arguments for ansible-test integration (e.g. a target name)
#   FF_PYTEST_TIMEOUT    per-test timeout (s) for tests/sandbox, default 900
#   PYTEST_ADDOPTS       read by pytest itself, e.g. "-k migrate -x"
# shellcheck disable=SC2317  # the stage_* functions are called by name ("stage_$stage")
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ALL_STAGES=(sanity units integration lint)

usage() { awk 'NR == 1 { next } /^#/ { if ($2 != "shellcheck") { sub(/^# ?/, ""); print }; next } { exit }' "$0"; }

stages=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    sanity|units|integration|lint) stages+=("$arg") ;;
    *) usage >&2; ff_die "unknown stage: $arg (stages: ${ALL_STAGES[*]})" ;;
  esac
done
[ "${#stages[@]}" -gt 0 ] || stages=("${ALL_STAGES[@]}")

ff_activate
cd "$FF_ROOT" || exit 1

LOG_DIR="$FF_BUILD/test-logs"
mkdir -p "$LOG_DIR"

# A pytest closing line, e.g. "===== 12 passed, 1 skipped in 3.40s =====" or "no tests ran in 0.01s".
PYTEST_CLOSING='^(=+ )?(no tests ran|[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|rerun)).* in [0-9.]+s( \([0-9:]+\))?( =+)?$'

note() { printf -- '-- %s\n' "$*"; }

# Count integration targets ansible-test would run by default (not setup_/prepare_, not hidden,
# disabled, unsupported or unstable).
runnable_targets() {
  local dir name aliases
  for dir in "$FF_STAGE"/tests/integration/targets/*/; do
    [ -d "$dir" ] || continue
    name="$(basename "$dir")"
    case "$name" in setup_*|prepare_*) continue ;; esac
    aliases="$(cat "$dir/aliases" 2>/dev/null || true)"
    if printf '%s\n' "$aliases" | grep -Eq '^[[:space:]]*(hidden|disabled|unsupported|unstable)([[:space:]]|#|$)'; then
      continue
    fi
    printf '%s\n' "$name"
  done
}

# ------------------------------------------------------------------------------------ stages
stage_sanity() {
  local ignore bad=0
  for ignore in "$FF_ROOT"/tests/sanity/ignore-*.txt; do
    [ -e "$ignore" ] || continue
    if grep -Evq '^[[:space:]]*(#.*)?$' "$ignore"; then
      printf 'ERROR: %s must stay empty (fix the code instead of ignoring a sanity error):\n' "${ignore#"$FF_ROOT"/}"
      grep -Ev '^[[:space:]]*(#.*)?$' "$ignore"
      bad=1
    fi
  done
  cd "$FF_STAGE" || return 1
  note "ansible-test sanity --local --python $FF_PYTHON_VERSION ${FF_SANITY_ARGS:-} (in ${FF_STAGE#"$FF_ROOT"/})"
  # shellcheck disable=SC2086  # FF_SANITY_ARGS is a list of words on purpose
  ansible-test sanity --local --python "$FF_PYTHON_VERSION" --color no ${FF_SANITY_ARGS:-} || return 1
  return "$bad"
}

stage_units() {
  cd "$FF_STAGE" || return 1
  if [ -z "$(find tests/unit -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]; then
    note "no unit tests yet (tests/unit/**/test_*.py): nothing to run"
    return 0
  fi
  note "ansible-test units --local --python $FF_PYTHON_VERSION ${FF_UNITS_ARGS:-}"
  # shellcheck disable=SC2086
  ansible-test units --local --python "$FF_PYTHON_VERSION" --color no ${FF_UNITS_ARGS:-}
}

stage_integration() {
  local rc=0 prc targets
  # 1. pytest tests/sandbox: runs from the checkout (the sandbox is not part of the collection).
  if [ -d "$FF_ROOT/tests/sandbox" ]; then
    # Two workers, one test file each at a time: the sandbox tests mostly wait on subprocesses, and
    # a file's tests share the sandboxes they start (FF_PYTEST_WORKERS=0 runs them in one process).
    local workers=(-n "${FF_PYTEST_WORKERS:-2}" --dist loadfile)
    [ "${FF_PYTEST_WORKERS:-2}" = 0 ] && workers=()
    note "pytest tests/sandbox (PYTHONPATH=sandbox, ${FF_PYTEST_WORKERS:-2} workers, timeout ${FF_PYTEST_TIMEOUT:-900}s per test)"
    (
      cd "$FF_ROOT" &&
      PYTHONPATH="$FF_ROOT/sandbox${PYTHONPATH:+:$PYTHONPATH}" \
      ANSIBLE_COLLECTIONS_PATH="$FF_ANSIBLE_COLLECTIONS_PATH" \
        python -m pytest tests/sandbox -ra "${workers[@]}" \
          -o cache_dir="$FF_BUILD/.pytest_cache" \
          --timeout "${FF_PYTEST_TIMEOUT:-900}" \
          --junitxml "$FF_BUILD/test-results/sandbox.xml"
    )
    prc=$?
    if [ "$prc" -eq 5 ]; then
      note "pytest collected no tests in tests/sandbox (exit 5): not a failure"
    elif [ "$prc" -ne 0 ]; then
      rc=1
    fi
  else
    note "tests/sandbox does not exist yet: nothing to run"
  fi

  # 2. ansible-test integration, on the staged collection.
  targets="$(runnable_targets)"
  if [ -z "$targets" ]; then
    note "no integration targets yet (tests/integration/targets/<name>/): nothing to run"
    return "$rc"
  fi
  write_integration_config
  cd "$FF_STAGE" || return 1
  note "ansible-test integration --local --python $FF_PYTHON_VERSION ${FF_INTEGRATION_ARGS:-} (targets: $(printf '%s' "$targets" | tr '\n' ' '))"
  # shellcheck disable=SC2086
  ansible-test integration --local --python "$FF_PYTHON_VERSION" --color no ${FF_INTEGRATION_ARGS:-} || rc=1
  return "$rc"
}

# ansible-test passes only a few environment variables to the targets; they learn where the
# checkout (and the sandbox inside it) is from tests/integration/integration_config.yml, which
# ansible-test loads as extra vars. Written into the staged copy unless the collection ships one.
write_integration_config() {
  local config="$FF_STAGE/tests/integration/integration_config.yml"
  [ -f "$FF_ROOT/tests/integration/integration_config.yml" ] && return 0
  "$FF_PY" - "$config" <<'EOF'
import json, os, sys
root = os.environ['FF_ROOT']
with open(sys.argv[1], 'w', encoding='utf-8') as handle:
    handle.write('---\n# written by scripts/test.sh for ansible-test integration\n')
    for key, value in (('fate_flow_checkout', root),
                       ('fate_flow_python', os.environ['FF_PY']),
                       ('fate_sandbox_root', os.path.join(root, '.sandbox'))):
        handle.write('%s: %s\n' % (key, json.dumps(value)))
EOF
}

stage_lint() {
  local rc=0 scripts=()
  cd "$FF_STAGE" || return 1
  note "ansible-lint --offline --profile production (in ${FF_STAGE#"$FF_ROOT"/}, ANSIBLE_COLLECTIONS_PATH=${FF_COLLECTIONS#"$FF_ROOT"/})"
  ANSIBLE_COLLECTIONS_PATH="$FF_COLLECTIONS" ansible-lint --offline --profile production --nocolor || rc=1

  cd "$FF_ROOT" || return 1
  mapfile -t scripts < <(git ls-files -co --exclude-standard -- 'scripts/*.sh' 'scripts/lib/*.sh' .ci/run 2>/dev/null)
  if [ "${#scripts[@]}" -eq 0 ]; then
    :
  elif command -v shellcheck >/dev/null 2>&1; then
    note "shellcheck ${scripts[*]}"
    shellcheck -x "${scripts[@]}" || rc=1
  else
    note "shellcheck not installed (Debian package shellcheck): scripts not checked"
  fi
  return "$rc"
}

# ------------------------------------------------------------------------------------ runner
ff_banner "prepare: stage the collection as shipped"
ff_stage || ff_die "staging the collection failed"

declare -A result duration
total_started="$(ff_now)"
failed=0
index=0
for stage in "${stages[@]}"; do
  index=$((index + 1))
  ff_banner "stage $index/${#stages[@]}: $stage"
  log="$LOG_DIR/$stage.log"
  started="$(ff_now)"
  ( "stage_$stage" ) 2>&1 | tee "$log"
  rc="${PIPESTATUS[0]}"
  duration[$stage]=$(( $(ff_now) - started ))
  if [ "$rc" -eq 0 ]; then
    result[$stage]="ok"
  else
    result[$stage]="FAILED (exit $rc)"
    failed=1
  fi
done

ff_banner "summary (logs: ${LOG_DIR#"$FF_ROOT"/}/<stage>.log)"
printf '%-12s  %-18s  %s\n' "stage" "result" "time"
for stage in "${stages[@]}"; do
  printf '%-12s  %-18s  %ss\n' "$stage" "${result[$stage]}" "${duration[$stage]}"
done
printf '%-12s  %-18s  %ss\n' "total" "$([ "$failed" -eq 0 ] && echo ok || echo FAILED)" "$(( $(ff_now) - total_started ))"

# pytest's own closing lines, last, so that whoever reads the end of the log sees them verbatim.
closing=()
for stage in units integration; do
  [ -f "$LOG_DIR/$stage.log" ] || continue
  case " ${stages[*]} " in *" $stage "*) ;; *) continue ;; esac
  while IFS= read -r line; do closing+=("$line"); done < <(grep -E "$PYTEST_CLOSING" "$LOG_DIR/$stage.log" || true)
done
if [ "${#closing[@]}" -gt 0 ]; then
  printf '\npytest closing lines (units, then tests/sandbox):\n'
  printf '%s\n' "${closing[@]}"
fi
exit "$failed"
