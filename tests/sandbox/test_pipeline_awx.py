"""playbooks/pipeline.yml through ansible-runner 2.4, AWX's engine (issue #6; docs/awx.md).

What AWX does for a job template is reproduced with ansible_runner.run(): a private data dir, the project directory,
an inventory, the survey's answers as extra vars (plain strings), and the FATE Flow request-signing keys as
environment variables, injected the way the custom credential type of docs/awx.md injects them (FATE_FLOW_APP_KEY,
FATE_FLOW_SECRET_KEY); the inventory's group_vars map them to fate_flow_app_key / fate_flow_secret_key with the env
lookup, as docs/examples/awx-project does. Environment files are kept out of the artifacts as AWX does
(suppress_env_files).

On a 1.11 -> 1.11 sandbox whose source FATE Flows require signed requests (http_app_key / http_secret_key set, FATE
Flow 1.7+; restored afterwards):
1. without the credential the job fails on the first source FATE Flow call, with the module's signing hint;
2. with it the job succeeds, the set_stats report arrives in the playbook_on_stats event's artifact_data with the
   survey's service id and an inference answer, and the secret appears in no event, no stdout and no artifact file.
"""
import json
import os
import secrets
import time

import pytest
import requests

from ansible_helpers import CALLBACK_DIR, PLAYBOOK_BIN, staged_collections
from conftest import PYTHON, REPO
from pipeline_inventory import write_inventory
from test_flow_cli import _restart_flow, _set_app_key

ansible_runner = pytest.importorskip("ansible_runner")

SOURCE_PARTIES = ("9999", "10000")
APP_KEY = "fate-flow-awx"
CREDENTIAL_VARS = {
    "fate_flow_app_key": "{{ lookup('ansible.builtin.env', 'FATE_FLOW_APP_KEY') }}",
    "fate_flow_secret_key": "{{ lookup('ansible.builtin.env', 'FATE_FLOW_SECRET_KEY') }}",
}


@pytest.fixture(scope="module")
def signed_federation(sandbox):
    """The 1.11 -> 1.11 sandbox with request signing on both source FATE Flows (restored at the end)."""
    fed = sandbox(source="1.11", destination="1.11")
    secret = "awx-secret-" + secrets.token_hex(12)
    originals = {}
    try:
        for party_id in SOURCE_PARTIES:
            path = fed["parties"][party_id]["config_files"][0]
            with open(path) as handle:
                originals[party_id] = (path, handle.read())
            _set_app_key(path, APP_KEY, secret)
            _restart_flow(fed, party_id)
        yield fed, secret
    finally:
        for party_id, (path, text) in originals.items():
            with open(path, "w") as handle:
                handle.write(text)
            _restart_flow(fed, party_id)


def run_job(private_data_dir, inventory, extravars, envvars):
    """One 'job': ansible_runner.run() as AWX calls it; returns (runner, events, stdout)."""
    os.makedirs(private_data_dir, exist_ok=True)
    cfg = os.path.join(private_data_dir, "ansible.cfg")
    with open(cfg, "w") as handle:
        handle.write("[defaults]\ngathering = explicit\nretry_files_enabled = False\ninterpreter_python = %s\n"
                     % PYTHON)
    env = {"ANSIBLE_CONFIG": cfg, "ANSIBLE_COLLECTIONS_PATH": staged_collections(), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": os.path.join(private_data_dir, ".ansible-tmp"),
           "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
           # The venv's ansible-playbook and its helpers, also when pytest runs without an activated venv.
           "PATH": os.path.dirname(PLAYBOOK_BIN) + os.pathsep + os.environ.get("PATH", "")}
    env.update(envvars)
    runner = ansible_runner.run(private_data_dir=str(private_data_dir), project_dir=REPO,
                                playbook="playbooks/pipeline.yml", inventory=inventory, extravars=extravars,
                                envvars=env, suppress_env_files=True, quiet=True, timeout=900)
    events = list(runner.events)
    with open(runner.stdout.name) as handle:
        stdout = handle.read()
    return runner, events, stdout


def test_pipeline_through_ansible_runner(signed_federation, tmp_path, monkeypatch):
    fed, secret = signed_federation
    # ansible-runner looks ansible-playbook up on its own PATH: the venv's, also without an activated venv.
    monkeypatch.setenv("PATH", os.path.dirname(PLAYBOOK_BIN) + os.pathsep + os.environ.get("PATH", ""))
    # Signing is really on: an unsigned request to a source FATE Flow is refused.
    assert requests.post(fed["parties"]["9999"]["flow_url"] + "/v1/server/version/get", json={},
                         timeout=10).status_code == 401
    inventory = write_inventory(fed, tmp_path / "inventory", extra_group_vars=CREDENTIAL_VARS)
    version = "awx_%d" % int(time.time())
    survey = {"fate_unify_model_version": version, "fate_service_id": "awx_scoring_" + version,
              "fate_inference": "true", "fate_report_dir": str(tmp_path / "reports")}

    # 1. No credential attached: the job fails at the first signed call, saying what to check.
    runner, events, stdout = run_job(tmp_path / "job1", inventory, survey, {})
    assert runner.status == "failed" and runner.rc != 0, stdout
    assert "check app_key and secret_key" in stdout, stdout[-4000:]

    # 2. With the credential's environment variables.
    runner, events, stdout = run_job(tmp_path / "job2", inventory, survey,
                                     {"FATE_FLOW_APP_KEY": APP_KEY, "FATE_FLOW_SECRET_KEY": secret})
    assert runner.status == "successful" and runner.rc == 0, stdout[-6000:]
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1
    report = stats[0]["event_data"]["artifact_data"]["fate_flow_report"]
    assert report["operation"] == "pipeline" and report["check_mode"] is False
    assert report["model"]["model_version"] == version
    assert report["service_id"] == survey["fate_service_id"]
    assert report["inference"]["retcode"] == 0 and isinstance(report["inference"]["data"]["score"], float)
    assert sorted((p["role"], p["old_party_id"], p["new_party_id"], p["import_status"]) for p in report["parties"]) \
        == [("arbiter", "10000", "100", "imported"), ("guest", "9999", "99", "imported"),
            ("host", "10000", "100", "imported")]
    assert not [e for e in events if e.get("event") == "runner_on_failed"]

    # The secret is nowhere in what the job leaves behind: events, stdout, artifacts, reports. Exception:
    # ansible-runner's own record of the command line and its environment (artifacts/<id>/command), which holds
    # every environment variable it was given; AWX discards the private data dir after the job (docs/awx.md).
    assert secret not in stdout
    assert secret not in json.dumps(events)
    leaked = []
    for top in (os.path.join(str(tmp_path / "job2"), "artifacts"), str(tmp_path / "reports")):
        for directory, _dirs, files in os.walk(top):
            for name in files:
                if name == "command" and os.path.basename(os.path.dirname(directory)) == "artifacts":
                    continue
                with open(os.path.join(directory, name), "rb") as handle:
                    if secret.encode() in handle.read():
                        leaked.append(os.path.join(directory, name))
    assert not leaked, leaked
