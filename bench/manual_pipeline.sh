#!/usr/bin/env bash
# The manual procedure of FATE's migration guide, as an operator would script it: the real `flow` CLI (fate-client)
# and scp between the party hosts. bench/pipeline.py times it against playbooks/pipeline.yml on the same sandbox.
#
#   bench/manual_pipeline.sh FEDERATION_JSON WORKDIR UNIFY_VERSION [SERVICE_ID]
#   FLOW=/path/to/flow   (default: .cache/flow-cli/1.11.3/bin/flow, installed by sandbox/fate_sandbox/flowcli.py)
#
# Steps (what the playbook does, without its pre-flight checks, hashes and report):
#   1. flow model migrate on the source guest (MULTIPLE: every source party writes its archive)
#   2. scp -3 of each archive from its source party host to its destination party host (their sshd)
#   3. flow model import on each destination party, once per job role
#   4. flow model load and flow model bind on the destination guest
#   5. one online inference (curl) on the destination guest's serving-proxy
# Prints "step <name> <seconds>" per step and "total <seconds>" (timed after taking the CLI venv's lock, which
# sandbox/fate_sandbox/flowcli.py also takes: the CLI keeps its server address inside the venv).
set -euo pipefail

fed=$1 work=$2 unify=$3
service=${4:-manual_${unify}}
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
flow=${FLOW:-$repo/.cache/flow-cli/1.11.3/bin/flow}
mkdir -p -- "$work"
cd -- "$work"

j() { jq -r "$@" "$fed"; }
now() { date +%s.%N; }
step_start=0
step() { local t; t=$(now); [ "$step_start" = 0 ] || printf 'step %s %.3f\n' "$step_name" "$(echo "$t - $step_start" | bc)"; step_name=$1; step_start=$t; }
fail() { echo "manual_pipeline: $*" >&2; exit 1; }
# Run the CLI; fail unless it printed retcode 0 (1.11 prints a torch notice before the JSON).
flow_ok() {
  local out
  out=$("$flow" "$@" 2>&1) || fail "flow $* exited $?: $out"
  out=$(printf '%s\n' "$out" | grep -v '^Import torch failed')
  [ "$(printf '%s' "$out" | jq -r '.retcode' 2>/dev/null)" = 0 ] || fail "flow $*: $out"
  printf '%s' "$out"
}
flow_at() {   # flow init --ip --port, as the guide does before talking to another party's FATE Flow
  local url=$1 hostport
  hostport=${url#http://}
  flow_ok init --ip "${hostport%:*}" --port "${hostport##*:}" >/dev/null
}
party() { j --arg p "$1" ".parties[\$p].$2"; }

exec 9>"$(dirname -- "$(dirname -- "$flow")")/.run.lock"
flock 9
t0=$(now)

ssh_port=$(j '[.parties[].ssh.port][0]')
ssh_key=$(j '[.parties[].ssh.private_key][0]')
known_hosts=$(j '[.parties[].ssh.known_hosts][0]')
ssh_user=$(j '[.parties[].ssh.user][0]')
ssh_opts=(-o BatchMode=yes -o "UserKnownHostsFile=$known_hosts" -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
          -i "$ssh_key")
model_id=$(j '.model.model_id')
model_version=$(j '.model.deployed_version')
src_guest=$(j '.migration.role.guest[0]')
dst_guest=$(j '.migration.migrate_role.guest[0]')
new_model_id=$(j '.migration.migrate_role | to_entries | sort_by(.key)
                  | map("\(.key)-\(.value | unique | map(tostring) | join("_"))") | join("#") + "#model"')

step migrate
jq --arg unify "$unify" --arg mid "$model_id" --arg mv "$model_version" '{
    job_parameters: {federated_mode: "MULTIPLE"},
    migrate_initiator: {role: "guest", party_id: .migration.migrate_role.guest[0]},
    role: .migration.role, migrate_role: .migration.migrate_role, execute_party: .migration.role,
    model_id: $mid, model_version: $mv, unify_model_version: $unify}' "$fed" > migrate.json
flow_at "$(party "$src_guest" flow_url)"
flow_ok model migrate -c migrate.json > migrate.out
# role, old party, new party, archive path on the old party's host
jq -r --slurpfile fed "$fed" '.data.detail | to_entries[] | .key as $role | .value | to_entries[] | .key as $old
      | [$role, $old,
         ($fed[0].migration.migrate_role[$role][[$fed[0].migration.role[$role][] | tostring] | index($old)] | tostring),
         (.value.retmsg | capture("found at .(?<p>[^\u0027]+).").p)] | @tsv' migrate.out > archives.tsv
[ -s archives.tsv ] || fail "migrate reported no archive: $(cat migrate.out)"

step scp
while IFS=$'\t' read -r role old new path; do
  src=$(party "$old" address) dst=$(party "$new" address)
  dir="$(party "$new" fate_home)/imported_archives"
  ssh "${ssh_opts[@]}" -p "$ssh_port" "$ssh_user@$dst" "mkdir -p -- $(printf '%q' "$dir")" </dev/null
  scp -q -3 "${ssh_opts[@]}" -P "$ssh_port" "$ssh_user@$src:$path" "$ssh_user@$dst:$dir/" </dev/null
done < archives.tsv

step import
current=
while IFS=$'\t' read -r role old new path; do
  if [ "$current" != "$new" ]; then flow_at "$(party "$new" flow_url)"; current=$new; fi
  jq -n --arg role "$role" --argjson pid "$new" --arg mid "$new_model_id" --arg mv "$unify" \
     --arg file "$(party "$new" fate_home)/imported_archives/$(basename -- "$path")" \
     '{role: $role, party_id: $pid, model_id: $mid, model_version: $mv, file: $file}' > import.json
  flow_ok model import -c import.json >/dev/null
done < <(sort -t$'\t' -k3,3 archives.tsv)

step load_bind
jq --arg mid "$new_model_id" --arg mv "$unify" '{
    initiator: {party_id: (.migration.migrate_role.guest[0] | tostring), role: "guest"},
    role: (.migration.migrate_role | map_values(map(tostring))),
    job_parameters: {work_mode: 1, model_id: $mid, model_version: $mv}}' "$fed" > load.json
jq --arg sid "$service" '. + {service_id: $sid}' load.json > bind.json
flow_at "$(party "$dst_guest" flow_url)"
flow_ok model load -c load.json >/dev/null
flow_ok model bind -c bind.json >/dev/null

step inference
answer=$(curl -sS --fail -X POST -H 'Content-Type: application/json' \
  --data "{\"head\": {\"serviceId\": \"$service\"}, \"body\": {\"featureData\": {\"x0\": 0.25, \"x1\": -0.5, \"x2\": 1.0, \"x3\": 0.1}, \"sendToRemoteFeatureData\": {\"device_id\": \"bench-0001\"}}}" \
  "$(party "$dst_guest" serving.inference_url)")
[ "$(printf '%s' "$answer" | jq -r '.retcode')" = 0 ] || fail "inference: $answer"

step end
printf 'total %.3f\n' "$(echo "$(now) - $t0" | bc)"
