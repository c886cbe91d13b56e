"""Issue #3: the fate.flow modules chained by ansible-playbook against the sandbox federation.

migrate (source cluster) -> import (each destination party) -> model_info -> load -> bind -> inference, with
nothing but the modules, on 1.6 -> 1.11 and 1.11 -> 1.8. Each pair runs the same playbook three times:

1. --check on a fresh unify_model_version: migrate reports the new model id, version and archive names and
   paths, and nothing changes in any FATE home (model_local_cache, temp dirs, the Flows' model tables);
   import/load/bind are skipped because nothing was migrated yet;
2. for real: every module changes something, the served model answers inference;
3. again: migrate, import, deploy, model_info and flow_info report changed=false; load and bind report
   changed=true, as their documentation says;
(load and bind in check mode: test_modules_failures.py and test_modules_publish.py.)

Both pairs run in the same ansible-playbook runs, one local inventory host per sandbox (their variables are host
variables), so that Ansible drives the two sandboxes in parallel. The playbook sets the destination guest's
flow_url once with module_defaults for the action group group/fate.flow.fate_flow; the tasks aimed at the
destination guest give none of their own.

The sandboxes (source 1.6 -> destination 1.11, 1.11 -> 1.8) are shared with other test files: every name used
here (unify_model_version, service id) starts with "mod_" and is used by no other test.
"""
import pytest
import requests

from ansible_helpers import federation_state, local_hosts, play, run_playbook

pytestmark = pytest.mark.timeout(600)

PAIRS = [pytest.param(("1.6", "1.11"), id="1.6-to-1.11"), pytest.param(("1.11", "1.8"), id="1.11-to-1.8")]

FLOW = "{{ fed.parties[src_guest].flow_url }}"
MODEL = "{{ fed.model.model_id }}"

CHAIN_TASKS = [
    # No flow_url: module_defaults of the action group gives the destination guest's.
    {"name": "Destination FATE Flow", "fate.flow.flow_info": {}, "register": "dst_flow"},
    {"name": "Deploy", "fate.flow.model_deploy": {
        "flow_url": FLOW, "model_id": MODEL, "model_version": "{{ fed.model.trained_version }}"},
     "register": "deployed"},
    # One migration per executing source party, each with that party's FATE home, so that every archive
    # (written into the executing party's temp dir) is seen again on a rerun.
    {"name": "Migrate", "fate.flow.model_migrate": {
        "flow_url": "{{ item.flow_url }}", "model_id": MODEL, "model_version": "{{ fed.model.deployed_version }}",
        "role": "{{ fed.migration.role }}", "migrate_role": "{{ fed.migration.migrate_role }}",
        "execute_party": "{{ item.execute }}", "unify_model_version": "{{ unify }}", "fate_home": "{{ item.home }}"},
     "loop": "{{ executors }}", "loop_control": {"label": "{{ item.execute }}"}, "register": "migration"},
    {"name": "Import", "fate.flow.model_import": {
        "flow_url": "{{ fed.parties[item.new_party_id | string].flow_url }}", "archive": "{{ item.archive_path }}",
        "role": "{{ item.role }}", "party_id": "{{ item.new_party_id }}"},
     "loop": "{{ migration.results | map(attribute='parties') | flatten(levels=1) }}",
     "loop_control": {"label": "{{ item.role }} {{ item.new_party_id }}"},
     "when": "item.archive_path is file"},
    {"name": "Migrated model on the destination guest", "fate.flow.model_info": {
        "model_id": "{{ new_model_id }}", "model_version": "{{ unify }}", "role": "guest",
        "party_id": "{{ dst_guest }}"}, "register": "dst_model"},
    {"name": "Load", "fate.flow.model_load": {
        "model_id": "{{ new_model_id }}", "model_version": "{{ unify }}", "role": "{{ fed.migration.migrate_role }}"},
     "when": "dst_model.exists"},
    {"name": "Bind", "fate.flow.model_bind": {
        "service_id": "{{ service_id }}", "model_id": "{{ new_model_id }}", "model_version": "{{ unify }}",
        "role": "{{ fed.migration.migrate_role }}"},
     "when": "dst_model.exists"},
]

CHAIN = [play(CHAIN_TASKS, name="migrate, import and publish", hosts="all", module_defaults={
    "group/fate.flow.fate_flow": {"flow_url": "{{ fed.parties[dst_guest].flow_url }}", "timeout": 60,
                                  "retries": 1, "retry_delay": 0.5}})]


def new_model_id(fed):
    roles = fed["migration"]["migrate_role"]
    return "#".join("%s-%s" % (r, "_".join(str(i) for i in sorted(set(roles[r])))) for r in sorted(roles)) + "#model"


def chain_vars(fed, unify):
    role = fed["migration"]["role"]
    executors = []
    for pid in sorted({str(p) for ids in role.values() for p in ids}):
        execute = dict((r, [p]) for r, ids in sorted(role.items()) for p in ids if str(p) == pid)
        party = fed["parties"][pid]
        executors.append({"flow_url": party["flow_url"], "home": party["fate_home"], "execute": execute})
    return {"fed": fed, "unify": unify, "service_id": "svc-" + unify, "executors": executors,
            "src_guest": str(role["guest"][0]), "dst_guest": str(fed["migration"]["migrate_role"]["guest"][0]),
            "new_model_id": new_model_id(fed)}


def infer(fed, pid, service_id):
    url = fed["parties"][str(pid)]["serving"]["inference_url"]
    return requests.post(url, timeout=30, json={
        "head": {"serviceId": service_id},
        "body": {"featureData": {"x0": 0.3, "x1": -0.2, "x2": 0.7, "x3": 0.05},
                 "sendToRemoteFeatureData": {"device_id": "modules-test"}}}).json()


def migrated_parties(run):
    """{(role, new party id): party entry} over the loop of the Migrate task."""
    found = {}
    for item in run.result("Migrate")["results"]:
        for entry in item["parties"]:
            found[(entry["role"], entry["new_party_id"])] = entry
    return found


def statuses(run, name):
    return sorted((item["item"]["role"], item["status"]) for item in run.result(name)["results"]
                  if not item.get("skipped"))


@pytest.fixture(scope="module")
def chain(sandbox, tmp_path_factory):
    """Both pairs at once, one local host per sandbox: --check, apply, apply again (see the module docstring).
    Returns {host: {"fed", "vars", "state_before_check", "state_after_check", "inference"}} plus the three runs."""
    hosts = {}
    for param in PAIRS:
        pair = param.values[0]
        fed = sandbox(source=pair[0], destination=pair[1])
        hosts[host_of(pair)] = {"fed": fed, "vars": chain_vars(fed, "mod_chain_%s_%s" % tuple(
            v.replace(".", "_") for v in pair))}
    inventory = local_hosts(dict((host, data["vars"]) for host, data in hosts.items()))
    workdir = tmp_path_factory.mktemp("chain")
    for data in hosts.values():
        data["state_before_check"] = federation_state(data["fed"])
    runs = {"check": run_playbook(workdir / "check", CHAIN, check=True, inventory=inventory)}
    for data in hosts.values():
        data["state_after_check"] = federation_state(data["fed"])
    runs["first"] = run_playbook(workdir / "apply1", CHAIN, inventory=inventory)
    for data in hosts.values():
        data["inference"] = infer(data["fed"], data["vars"]["dst_guest"], data["vars"]["service_id"])
    runs["second"] = run_playbook(workdir / "apply2", CHAIN, inventory=inventory)
    for data in hosts.values():
        data["inference_after_rerun"] = infer(data["fed"], data["vars"]["dst_guest"], data["vars"]["service_id"])
    return hosts, runs


def host_of(pair):
    return "fate_%s_to_%s" % tuple(v.replace(".", "_") for v in pair)


def pair_run(chain, pair, name):
    """(host data, the run `name` seen from the pair's host); the run must have no failed task there."""
    hosts, runs = chain
    host = host_of(pair)
    run = runs[name].for_host(host)
    failed = [(e["name"], e["result"].get("msg")) for e in run.tasks if e["status"] == "failed"]
    assert not failed, "%s run failed on %s: %s\n%s" % (name, host, failed, runs[name].output)
    return hosts[host], run


EXPECTED_PARTIES = {("guest", 99), ("host", 100), ("arbiter", 100)}


@pytest.mark.parametrize("pair", PAIRS)
def test_check_mode_predicts_the_migration_and_changes_nothing(chain, pair):
    data, check = pair_run(chain, pair, "check")
    fed, variables = data["fed"], data["vars"]
    assert data["state_after_check"] == data["state_before_check"], "check mode changed a FATE home or model table"
    dst_flow = check.result("Destination FATE Flow")
    assert dst_flow["flow_url"] == fed["parties"][variables["dst_guest"]]["flow_url"], \
        "flow_url from module_defaults of the action group"
    assert dst_flow["fate_version"].startswith(pair[1])
    predicted = migrated_parties(check)
    assert set(predicted) == EXPECTED_PARTIES
    for (role, new_pid), entry in predicted.items():
        assert entry["status"] == "would_migrate"
        assert entry["model_id"] == variables["new_model_id"] and entry["model_version"] == variables["unify"]
        assert entry["archive_name"] == "%s#%d#%s_%s.zip" % (role, new_pid, variables["new_model_id"],
                                                            variables["unify"])
        old_pid = str(fed["migration"]["role"][role][0])
        assert entry["archive_path"].startswith(fed["parties"][old_pid]["temp_dir"] + "/"), entry
    assert all(item["changed"] for item in check.result("Migrate")["results"])
    assert check.result("Deploy")["status"] == "already_deployed"
    assert all(item.get("skipped") for item in check.result("Import")["results"]), "no archive yet"
    assert check.result("Migrated model on the destination guest")["exists"] is False
    assert check.task("Load")["status"] == "skipped" and check.task("Bind")["status"] == "skipped"


@pytest.mark.parametrize("pair", PAIRS)
def test_migrate_import_load_bind_then_inference(chain, pair):
    data, first = pair_run(chain, pair, "first")
    _data, check = pair_run(chain, pair, "check")
    fed, variables = data["fed"], data["vars"]
    deployed = first.result("Deploy")
    assert deployed["changed"] is False and deployed["status"] == "already_deployed"
    # Other tests may deploy more children of the same parent in this shared sandbox: any child will do.
    assert deployed["model_version"] != fed["model"]["trained_version"]
    migrated = migrated_parties(first)
    predicted = migrated_parties(check)
    assert set(migrated) == EXPECTED_PARTIES
    for key, entry in migrated.items():
        assert entry["status"] == "migrated", entry
        for field in ("model_id", "model_version", "archive_name", "archive_path", "party_model_id"):
            assert entry[field] == predicted[key][field], "check mode predicted %s wrongly" % field
        assert len(entry["archive_sha256"]) == 64
    assert statuses(first, "Import") == [("arbiter", "imported"), ("guest", "imported"), ("host", "imported")]
    info = first.result("Migrated model on the destination guest")
    assert info["exists"] is True and info["changed"] is False
    assert {(m["role"], str(m["party_id"])) for m in info["models"]} == {("guest", variables["dst_guest"])}
    loaded = first.result("Load")
    assert loaded["changed"] is True and loaded["status"] == "loaded"
    assert {(p["role"], p["party_id"], p["retcode"]) for p in loaded["parties"]} == {("guest", "99", 0),
                                                                                     ("host", "100", 0)}
    bound = first.result("Bind")
    assert bound["changed"] is True and bound["retmsg"] == "service id is %s" % variables["service_id"]
    answer = data["inference"]
    assert answer["retcode"] == 0, answer
    assert 0.0 < answer["data"]["score"] < 1.0 and answer["data"]["modelVersion"] == variables["unify"]


@pytest.mark.parametrize("pair", PAIRS)
def test_rerun_changes_only_what_the_docs_say(chain, pair):
    data, second = pair_run(chain, pair, "second")
    _data, first = pair_run(chain, pair, "first")
    for name in ("Destination FATE Flow", "Deploy", "Migrated model on the destination guest"):
        assert second.task(name)["status"] == "ok", name
    assert not any(item["changed"] for item in second.result("Migrate")["results"])
    assert {e["status"] for e in migrated_parties(second).values()} == {"already_migrated"}
    for key, entry in migrated_parties(second).items():
        assert entry["archive_sha256"] == migrated_parties(first)[key]["archive_sha256"]
    assert statuses(second, "Import") == [("arbiter", "already_imported"), ("guest", "already_imported"),
                                          ("host", "already_imported")]
    assert not any(item["changed"] for item in second.result("Import")["results"])
    # model_load and model_bind cannot see what serving holds: documented changed=true on every run.
    assert second.task("Load")["status"] == "changed" and second.result("Load")["status"] == "loaded"
    assert second.task("Bind")["status"] == "changed" and second.result("Bind")["status"] == "bound"
    assert data["inference_after_rerun"]["retcode"] == 0
