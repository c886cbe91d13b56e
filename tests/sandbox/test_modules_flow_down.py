"""Issue #3: fate.flow modules when a FATE Flow is down, and a deploy that creates a new child, with ansible-playbook.

Destructive, so on a sandbox configuration no other test uses (source 1.6 -> destination 1.8): the guest's
FATE Flow (9999) is stopped with supervisorctl and started again in a finally block.

* flow_info with fail_on_unhealthy=false reports healthy=false (readiness probe), without it the task fails;
  model_info, model_migrate and model_load aimed at the stopped FATE Flow fail with "unreachable" and what to
  check; a migration and a load initiated by the running party (10000) that include 9999 fail naming
  "guest 9999" as not answering (FATE's federated transport failure).
* After the restart the documented readiness probe (until: result.healthy) succeeds; model_deploy with
  force=true in check mode reports would_deploy and creates nothing, for real deploys a new child (changed=true),
  and without force reuses that newest child (changed=false).
"""
import subprocess

import pytest

from ansible_helpers import federation_state, play, run_playbook

pytestmark = pytest.mark.timeout(600)

DOWN = "{{ fed.parties['9999'].flow_url }}"
UP = "{{ fed.parties['10000'].flow_url }}"
MODEL = "{{ fed.model.model_id }}"
DEPLOYED = "{{ fed.model.deployed_version }}"
MIGRATE = {"model_id": MODEL, "model_version": DEPLOYED, "role": "{{ fed.migration.role }}",
           "migrate_role": "{{ fed.migration.migrate_role }}", "unify_model_version": "mod_down"}

DOWN_TASKS = [
    {"name": "Probe", "fate.flow.flow_info": {"flow_url": DOWN, "fail_on_unhealthy": False}},
    {"name": "Versions", "fate.flow.flow_info": {"flow_url": DOWN}, "ignore_errors": True},
    {"name": "Look up", "fate.flow.model_info": {"flow_url": DOWN, "model_id": MODEL, "model_version": DEPLOYED},
     "ignore_errors": True},
    {"name": "Migrate on the stopped FATE Flow", "fate.flow.model_migrate": dict(MIGRATE, flow_url=DOWN),
     "ignore_errors": True},
    {"name": "Migrate through the running party", "ignore_errors": True, "fate.flow.model_migrate": dict(
        MIGRATE, flow_url=UP, execute_party={"guest": [9999], "host": [10000]})},
    {"name": "Load through the running party", "ignore_errors": True, "fate.flow.model_load": {
        "flow_url": UP, "model_id": MODEL, "model_version": DEPLOYED, "role": "{{ fed.model.roles }}",
        "initiator": {"role": "host", "party_id": 10000}}},
]

UP_TASKS = [
    {"name": "Wait for FATE Flow", "fate.flow.flow_info": {"fail_on_unhealthy": False, "retries": 0},
     "register": "flow", "until": "flow.healthy", "retries": 30, "delay": 1},
    {"name": "Check mode: deploy a new child", "check_mode": True, "fate.flow.model_deploy": {
        "model_id": MODEL, "model_version": "{{ fed.model.trained_version }}", "force": True}},
    {"name": "Deploy a new child", "fate.flow.model_deploy": {
        "model_id": MODEL, "model_version": "{{ fed.model.trained_version }}", "force": True}},
    {"name": "Deploy again", "fate.flow.model_deploy": {
        "model_id": MODEL, "model_version": "{{ fed.model.trained_version }}"}},
]


def supervisorctl(fed, party, *args):
    return subprocess.run([fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_flow_down_then_deploy(sandbox, tmp_path):
    fed = sandbox(source="1.6", destination="1.8")
    guest = fed["parties"]["9999"]
    program = guest["supervisor"]["flow_program"]
    stopped = supervisorctl(fed, guest, "stop", program)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    try:
        playbook = [play(DOWN_TASKS, name="FATE Flow 9999 is down", module_defaults={
            "group/fate.flow.fate_flow": {"timeout": 30, "retries": 1, "retry_delay": 0.2}})]
        run = run_playbook(tmp_path / "down", playbook, {"fed": fed})
    finally:
        started = supervisorctl(fed, guest, "start", program)
    assert started.returncode == 0, started.stdout + started.stderr
    assert run.rc == 0, run

    unreachable = "FATE Flow at %s is unreachable: could not connect ([Errno 111] Connection refused)" % \
        guest["flow_url"]
    probe = run.task("Probe")
    assert probe["status"] == "ok" and probe["result"]["healthy"] is False
    assert probe["result"]["unhealthy_reason"].startswith(unreachable)
    for name in ("Versions", "Look up", "Migrate on the stopped FATE Flow"):
        entry = run.task(name)
        assert entry["status"] == "failed", name
        assert entry["result"]["msg"].startswith(unreachable), entry["result"]["msg"]
        assert "Check flow_url and that FATE Flow is running" in entry["result"]["msg"]
        assert entry["result"]["reason"] == "transport"
    assert "(after 2 attempt(s))" in run.result("Versions")["msg"], "retries: 1 means two attempts"
    for name, endpoint in (("Migrate through the running party", "migrate"), ("Load through the running party",
                                                                              "load")):
        entry = run.task(name)
        assert entry["status"] == "failed", name
        msg = entry["result"]["msg"]
        assert msg.startswith("/v1/model/%s failed on 1 of 2 parties - guest 9999: no answer from this party" %
                              endpoint), msg
        assert "federated transport failure" in msg and entry["result"]["reason"] == "party"
        assert entry["result"]["party"]["party_id"] in (9999, "9999")

    # FATE Flow 9999 is back: the readiness probe waits for it, then deploy.
    before = federation_state(fed)
    playbook = [play(UP_TASKS, name="FATE Flow 9999 is back", module_defaults={
        "group/fate.flow.fate_flow": {"flow_url": DOWN, "timeout": 60}})]
    run = run_playbook(tmp_path / "up", playbook, {"fed": fed})
    assert run.rc == 0, run
    assert run.result("Wait for FATE Flow")["healthy"] is True
    assert run.result("Wait for FATE Flow")["fate_version"] == "1.6.1"
    check = run.task("Check mode: deploy a new child")
    assert check["status"] == "changed" and check["result"]["status"] == "would_deploy"
    assert check["result"]["model_version"] is None
    new = run.task("Deploy a new child")
    assert new["status"] == "changed" and new["result"]["status"] == "deployed"
    child = new["result"]["model_version"]
    assert child not in (fed["model"]["trained_version"], fed["model"]["deployed_version"])
    assert new["result"]["parent_model_version"] == fed["model"]["trained_version"]
    assert {(p["role"], str(p["party_id"]), p["retcode"]) for p in new["result"]["parties"]} >= {
        ("guest", "9999", 0), ("host", "10000", 0)}
    again = run.task("Deploy again")
    assert again["status"] == "ok" and again["result"]["status"] == "already_deployed"
    assert again["result"]["model_version"] == child
    # Only the one real deploy wrote anything: the new child's directories, nothing else.
    after = federation_state(fed)["files"]
    added = set(after) - set(before["files"])
    assert added and all("/%s/" % child in path for path in added), sorted(added)[:5]
    assert dict((path, after.get(path)) for path in before["files"]) == before["files"], "a deploy changed a file"
