"""Issue #3: fate.flow modules on FATE Flow 1.4 (sandbox source 1.4 -> destination 1.6), with ansible-playbook.

FATE Flow 1.4 has no model query, deploy or migration: flow_info works, model_info and model_migrate fail
clearly, model_deploy changes nothing and hands the trained version on to load; load and bind publish the trained
model to FATE-Serving, which then answers inference. The playbook runs twice:

1. --check: nothing changes in any FATE home or model table, load and bind say what they would do, and the
   service id is still unknown to serving;
2. for real: bind before load fails (FATE-Serving 104, "load the model first"), then load, bind, load again and
   bind again all report changed=true (documented: they cannot see what serving holds), and inference works.
"""
import pytest
import requests

from ansible_helpers import federation_state, play, run_playbook

pytestmark = pytest.mark.timeout(600)

FLOW = "{{ fed.parties['9999'].flow_url }}"
MODEL = "{{ fed.model.model_id }}"
SERVICE = "mod-1-4"
PUBLISH = {"model_id": MODEL, "model_version": "{{ deployed.model_version }}", "role": "{{ fed.model.roles }}"}

TASKS = [
    {"name": "FATE Flow", "fate.flow.flow_info": {}},
    {"name": "Look up the model", "fate.flow.model_info": {"model_id": MODEL}, "ignore_errors": True,
     "when": "not ansible_check_mode"},
    {"name": "Deploy", "register": "deployed",
     "fate.flow.model_deploy": {"model_id": MODEL, "model_version": "{{ fed.model.trained_version }}"}},
    {"name": "Migrate", "ignore_errors": True, "when": "not ansible_check_mode", "fate.flow.model_migrate": {
        "model_id": MODEL, "model_version": "{{ fed.model.trained_version }}", "role": "{{ fed.migration.role }}",
        "migrate_role": "{{ fed.migration.migrate_role }}", "unify_model_version": "mod_1_4"}},
    {"name": "Bind before load", "ignore_errors": True, "when": "not ansible_check_mode",
     "fate.flow.model_bind": dict(PUBLISH, service_id=SERVICE)},
    {"name": "Load", "fate.flow.model_load": PUBLISH},
    {"name": "Bind", "fate.flow.model_bind": dict(PUBLISH, service_id=SERVICE)},
    {"name": "Load again", "fate.flow.model_load": PUBLISH, "when": "not ansible_check_mode"},
    {"name": "Bind again", "fate.flow.model_bind": dict(PUBLISH, service_id=SERVICE), "when": "not ansible_check_mode"},
]
PLAYBOOK = [play(TASKS, name="publish on FATE 1.4", module_defaults={
    "group/fate.flow.fate_flow": {"flow_url": FLOW, "timeout": 60, "retries": 1, "retry_delay": 0.5}})]


def infer(fed, service_id):
    return requests.post(fed["parties"]["9999"]["serving"]["inference_url"], timeout=30, json={
        "head": {"serviceId": service_id},
        "body": {"featureData": {"x0": 0.3, "x1": -0.2, "x2": 0.7, "x3": 0.05},
                 "sendToRemoteFeatureData": {"device_id": "modules-test"}}}).json()


def assert_flow_and_deploy(run, fed):
    flow = run.task("FATE Flow")
    assert flow["status"] == "ok" and flow["result"]["fate_version"] == "1.4.5"
    assert flow["result"]["capabilities"]["supports_query"] is False
    deployed = run.task("Deploy")
    assert deployed["status"] == "ok" and deployed["result"]["status"] == "not_needed"
    assert deployed["result"]["model_version"] == fed["model"]["trained_version"]
    assert any("has no deploy API" in w for w in deployed["result"]["warnings"])


def assert_refusals(run, fed):
    info = run.task("Look up the model")
    assert info["status"] == "failed" and info["result"]["reason"] == "unsupported"
    assert info["result"]["msg"] == ("Querying models needs FATE Flow 1.5.1 or later (POST /v1/model/query); the "
                                     "FATE Flow at %s is 1.4.5." % fed["parties"]["9999"]["flow_url"])
    migrated = run.task("Migrate")
    assert migrated["status"] == "failed" and migrated["result"]["reason"] == "unsupported"
    assert "FATE Flow 1.4.5 has no model migration API" in migrated["result"]["msg"]


def test_fate_1_4_info_load_bind(sandbox, tmp_path):
    fed = sandbox(source="1.4", destination="1.6")

    before = federation_state(fed)
    check = run_playbook(tmp_path / "check", PLAYBOOK, {"fed": fed}, check=True)
    assert check.rc == 0, check
    assert federation_state(fed) == before, "check mode changed a FATE home or a model table"
    assert_flow_and_deploy(check, fed)
    assert check.result("Load")["status"] == "would_load" and check.result("Load")["changed"] is True
    assert check.result("Bind")["status"] == "would_bind" and check.result("Bind")["changed"] is True
    unbound = infer(fed, SERVICE)
    assert unbound["retcode"] == 110 and unbound["data"] == {}, "check mode bound the service id"

    run = run_playbook(tmp_path / "apply", PLAYBOOK, {"fed": fed})
    assert run.rc == 0, run
    assert_flow_and_deploy(run, fed)
    assert_refusals(run, fed)
    early = run.task("Bind before load")
    assert early["status"] == "failed" and early["result"]["retcode"] == 104
    assert "load the model first (fate.flow.model_load)" in early["result"]["msg"]
    for name in ("Load", "Load again"):
        loaded = run.task(name)
        assert loaded["status"] == "changed" and loaded["result"]["status"] == "loaded", name
        assert {(p["role"], p["party_id"], p["retcode"]) for p in loaded["result"]["parties"]} == {
            ("guest", "9999", 0), ("host", "10000", 0)}
    for name in ("Bind", "Bind again"):
        bound = run.task(name)
        assert bound["status"] == "changed" and bound["result"]["retmsg"] == "service id is %s" % SERVICE, name
    answer = infer(fed, SERVICE)
    assert answer["retcode"] == 0, answer
    assert 0.0 < answer["data"]["score"] < 1.0 and answer["data"]["modelVersion"] == fed["model"]["trained_version"]
