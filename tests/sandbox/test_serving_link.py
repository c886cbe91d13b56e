"""fate.flow.serving_link + the fate.flow.flow_restart role, run with ansible-playbook against sandbox parties.

Parties: FATE 1.4 (arch/conf/server_conf.json + base_conf.yaml), 1.6 and 1.11 (conf/service_conf.yaml), each with
ZooKeeper and its digest ACL. The sandboxes used here (1.4->1.6 and 1.11->1.6, both with ZooKeeper, no registry)
are used by no other test file; every test restores the party's config files (and restarts its FATE Flow when they
differed) in a finally block, and removes the backups it made.
"""
import glob
import hashlib
import json
import os
import subprocess
import time

import pytest
import requests
import yaml

from conftest import PYTHON, REPO

pytestmark = pytest.mark.timeout(600)

PLAYBOOK = os.path.join(REPO, "tests", "sandbox", "serving_link", "link.yml")
COLLECTIONS = os.path.join(REPO, "build")
PLAYBOOK_BIN = os.path.join(os.path.dirname(PYTHON), "ansible-playbook")

# (source, destination, party): one party per config layout
PARTIES = [
    pytest.param("1.4", "1.6", "9999", id="fate-1.4"),
    pytest.param("1.4", "1.6", "99", id="fate-1.6"),
    pytest.param("1.11", "1.6", "9999", id="fate-1.11"),
]


@pytest.fixture(scope="module", autouse=True)
def staged_collection():
    """The collection as shipped, where ANSIBLE_COLLECTIONS_PATH points (scripts/test.sh stages it too; a
    concurrent staging by another xdist worker may make this one fail, which is fine if the copy is there)."""
    staged = os.path.join(COLLECTIONS, "ansible_collections", "fate", "flow")
    proc = subprocess.run([PYTHON, os.path.join(REPO, "scripts", "lib", "stage_collection.py"), "--source", REPO,
                           "--dest", staged], capture_output=True, text=True, timeout=120)
    for needed in ("plugins/modules/serving_link.py", "roles/flow_restart/tasks/main.yml"):
        assert os.path.exists(os.path.join(staged, needed)), proc.stdout + proc.stderr


def run_playbook(tmp_path, fed, party_id, extra, check=False, diff=True, verbose=False):
    party = fed["parties"][party_id]
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[flow]\nparty ansible_connection=local ansible_python_interpreter=%s\n" % PYTHON)
    variables = dict(extra, party=party, supervisorctl=fed["supervisorctl"])
    extra_file = tmp_path / "vars.json"
    extra_file.write_text(json.dumps(variables))
    args = [PLAYBOOK_BIN, "-i", str(inventory), PLAYBOOK, "-e", "@%s" % extra_file]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbose:
        args.append("-vvv")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    """The PLAY RECAP counters of the one host."""
    for line in output.splitlines():
        if line.startswith("party ") and "ok=" in line:
            return dict((key, int(value)) for key, value in (item.split("=") for item in line.split()[2:]))
    raise AssertionError("no recap in:\n" + output)


def config_bytes(party):
    return dict((path, open(path, "rb").read()) for path in party["config_files"])


def digest(party):
    return dict((path, hashlib.sha256(data).hexdigest()) for path, data in config_bytes(party).items())


def supervisorctl(fed, party, *args):
    return subprocess.run([fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def flow_pid(fed, party):
    out = supervisorctl(fed, party, "pid", party["supervisor"]["flow_program"]).stdout.strip()
    return int(out) if out.isdigit() else None


def flow_healthy(party):
    body = {} if party["version_path"] == "/v1/server/version/get" else {"module": "FATE"}
    try:
        reply = requests.post(party["flow_url"] + party["version_path"], json=body, timeout=3)
        return reply.status_code == 200 and reply.json().get("retcode") == 0
    except (requests.RequestException, ValueError):
        return False


def wait_healthy(party, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if flow_healthy(party):
            return True
        time.sleep(0.5)
    return False


def load_config(party):
    data = {}
    for path in party["config_files"]:
        with open(path) as handle:
            data[os.path.basename(path)] = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    return data


def registry_conf(data):
    return data.get("service_conf.yaml") or data["base_conf.yaml"]


def servings_of(data):
    if "server_conf.json" in data:
        return data["server_conf.json"]["servers"]["servings"]
    servings = data["service_conf.yaml"]["servings"]
    return servings["hosts"] if isinstance(servings, dict) else servings


@pytest.fixture
def restore():
    """restore(fed, party) registers a party whose config files are put back (and FATE Flow restarted if they
    changed) after the test; the backups the module made are removed."""
    saved = []

    def register(fed, party):
        saved.append((fed, party, config_bytes(party)))

    yield register
    for fed, party, original in saved:
        changed = False
        for path, data in original.items():
            with open(path, "rb") as handle:
                if handle.read() != data:
                    changed = True
                    with open(path, "wb") as out:
                        out.write(data)
            for backup in glob.glob(glob.escape(path) + ".*~"):
                os.unlink(backup)
        if changed or not flow_healthy(party):
            supervisorctl(fed, party, "stop", party["supervisor"]["flow_program"])
            supervisorctl(fed, party, "start", party["supervisor"]["flow_program"])
            assert wait_healthy(party), "FATE Flow of %s did not come back after the test" % party["party_id"]


def zookeeper_vars(fed, password=None):
    zk = fed["zookeeper"]
    return {"hosts": zk["hosts"], "use_acl": True, "user": zk["user"], "password": password or zk["password"]}


@pytest.mark.parametrize("source,destination,party_id", PARTIES)
def test_zookeeper_then_servings(sandbox, restore, tmp_path, source, destination, party_id):
    fed = sandbox(source=source, destination=destination, zookeeper=True)
    party = fed["parties"][party_id]
    restore(fed, party)
    original = load_config(party)
    original_text = dict((path, data.decode()) for path, data in config_bytes(party).items())
    assert wait_healthy(party)
    zk = zookeeper_vars(fed)

    # check mode: reports the change, changes no byte, restarts nothing
    before, pid = digest(party), flow_pid(fed, party)
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_zookeeper": zk}, check=True)
    assert rc == 0, out
    assert "changed: [party]" in out and "use_registry: true" in out
    assert digest(party) == before and flow_pid(fed, party) == pid
    assert not glob.glob(glob.escape(party["config_files"][0]) + ".*~")
    assert zk["password"] not in out

    # mode B: use_registry on, zookeeper written, FATE Flow restarted and healthy, servings registered
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_zookeeper": zk})
    assert rc == 0, out
    assert "Registered servings: " in out and fed["parties"][party_id]["serving"]["grpc_address"] in out
    pid_b = flow_pid(fed, party)
    assert pid_b != pid and flow_healthy(party)
    data = load_config(party)
    conf = registry_conf(data)
    assert conf["use_registry"] is True
    assert conf["zookeeper"] == {"hosts": zk["hosts"], "use_acl": True, "user": zk["user"], "password": zk["password"]}
    assert servings_of(data) == servings_of(original)
    # comments and unrelated keys survive: every line that is not an owned key is still there, in order
    for path, text in original_text.items():
        new_text = open(path).read()
        if path.endswith(".yaml"):
            kept = [line for line in text.splitlines() if not line.lstrip().startswith(("use_registry:", "use_acl:", "password:", "- "))]
            new_kept = [line for line in new_text.splitlines() if not line.lstrip().startswith(("use_registry:", "use_acl:", "password:", "- "))]
            assert kept == new_kept
            assert [line for line in text.splitlines() if line.lstrip().startswith("#")]
        else:
            assert new_text == text     # mode B does not touch server_conf.json

    # again: nothing changes, nothing restarts
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_zookeeper": zk})
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert flow_pid(fed, party) == pid_b

    # mode A: back to the party's own serving; use_registry off, the zookeeper section left as it is
    servings = [party["serving"]["grpc_address"]]
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_servings": servings})
    assert rc == 0, out
    pid_a = flow_pid(fed, party)
    assert pid_a != pid_b and flow_healthy(party)
    data = load_config(party)
    assert registry_conf(data)["use_registry"] is False
    assert registry_conf(data)["zookeeper"]["password"] == zk["password"]
    assert servings_of(data) == servings

    rc, out = run_playbook(tmp_path, fed, party_id, {"link_servings": servings})
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert flow_pid(fed, party) == pid_a


@pytest.mark.parametrize("source,destination,party_id", PARTIES)
def test_servings_change_and_restore(sandbox, restore, tmp_path, source, destination, party_id):
    """Mode A to two servings (both reachable), then back; unrelated bytes unchanged."""
    fed = sandbox(source=source, destination=destination, zookeeper=True)
    party = fed["parties"][party_id]
    restore(fed, party)
    original = config_bytes(party)
    others = [p["serving"]["grpc_address"] for pid, p in sorted(fed["parties"].items()) if pid != party_id][:1]
    servings = [party["serving"]["grpc_address"]] + others
    pid = flow_pid(fed, party)
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_servings": servings, "supervisor_via_url": True})
    assert rc == 0, out
    assert flow_pid(fed, party) != pid, "restarted through supervisorctl -s <server url>"
    assert servings_of(load_config(party)) == servings
    changed = [path for path, data in config_bytes(party).items() if data != original[path]]
    assert changed == [party["config_files"][0]]          # server_conf.json (1.4) or service_conf.yaml
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_servings": [party["serving"]["grpc_address"]]})
    assert rc == 0, out
    assert config_bytes(party) == original, "mode A back to the original servings restores every byte"


@pytest.mark.parametrize("source,destination,party_id", PARTIES)
def test_wrong_zookeeper_password_rolls_back(sandbox, restore, tmp_path, source, destination, party_id):
    fed = sandbox(source=source, destination=destination, zookeeper=True)
    party = fed["parties"][party_id]
    restore(fed, party)
    assert wait_healthy(party)
    original = config_bytes(party)
    wrong = "Wr0ngZkPassw0rd%s" % party_id
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_zookeeper": zookeeper_vars(fed, wrong),
                                                     "restart_timeout": 10}, verbose=True)
    assert rc != 0, out
    assert "The change was rolled back" in out, out
    assert "NoAuth" in out                    # the error log's last lines are in the message
    assert wrong not in out, "the wrong password leaked into the output"
    assert fed["zookeeper"]["password"] not in out, "the real password leaked into the output"
    assert config_bytes(party) == original
    assert flow_healthy(party), "FATE Flow is healthy again on the old config"
    assert len(glob.glob(glob.escape(party["config_files"][-1]) + ".*~")) == 1   # the backup stays


@pytest.mark.parametrize("source,destination,party_id", PARTIES)
def test_invalid_config_is_refused_untouched(sandbox, restore, tmp_path, source, destination, party_id):
    fed = sandbox(source=source, destination=destination, zookeeper=True)
    party = fed["parties"][party_id]
    restore(fed, party)
    path = party["config_files"][0]
    with open(path, "ab") as handle:
        handle.write(b"\n{ not: [valid\n")
    broken = config_bytes(party)
    pid = flow_pid(fed, party)
    rc, out = run_playbook(tmp_path, fed, party_id, {"link_servings": ["127.0.0.1:8000"]})
    assert rc != 0
    assert ("is not valid JSON" if path.endswith(".json") else "is not valid YAML") in out, out
    assert config_bytes(party) == broken
    assert flow_pid(fed, party) == pid


def test_restart_with_service_sh(sandbox, restore, tmp_path):
    """flow_restart_method=service_sh: FATE's own script (stop, then start) instead of supervisord."""
    fed = sandbox(source="1.11", destination="1.6", zookeeper=True)
    party = fed["parties"]["10000"]
    restore(fed, party)
    script = party["service_script"]
    program = party["supervisor"]["flow_program"]
    assert supervisorctl(fed, party, "stop", program).returncode == 0
    try:
        servings = [party["serving"]["grpc_address"], fed["parties"]["9999"]["serving"]["grpc_address"]]
        rc, out = run_playbook(tmp_path, fed, "10000", {"link_servings": servings, "restart_method": "service_sh"})
        assert rc == 0, out
        assert "Stop FATE Flow with service.sh" in out and "Start FATE Flow with service.sh" in out
        assert flow_healthy(party)
        assert servings_of(load_config(party)) == servings
        assert "STOPPED" in supervisorctl(fed, party, "status", program).stdout   # not supervisord's child
        rc, out = run_playbook(tmp_path, fed, "10000", {"link_servings": servings, "restart_method": "service_sh"})
        assert rc == 0, out
        assert recap(out)["changed"] == 0, out
    finally:
        subprocess.run(["bash", script, "stop"], cwd=os.path.dirname(script), capture_output=True, timeout=60)
        supervisorctl(fed, party, "start", program)
