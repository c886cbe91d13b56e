"""Shared helpers of the fault and security suites (tests/sandbox/test_faults_serving.py, test_security.py).

* `state(fed)`: what a fault must not lose: every file (sha256) under each party's FATE home and FATE-Serving home
  (logs, the Flow's SQLite file and supervisord's own files left out; the model table is compared as rows instead),
  and the pid of every supervisord program and of ZooKeeper. `diff_state(before, after)` lists what differs.
* `inventory(fed, directory, **host_vars)`: the SSH inventory of tests/sandbox/pipeline_inventory.py plus, per
  party host, what playbooks/link_serving.yml needs to restart FATE Flow through the party's supervisord.
* `run(workdir, inventory_dir, playbook, extra_vars, ...)`: ansible-playbook with the staged collection; returns
  ansible_helpers.PlaybookRun (rc, tasks, output).
* `PortSquatter`: a foreign process holding FATE Flow's HTTP port while FATE Flow restarts (it accepts and closes
  every connection), released on demand: a real "FATE Flow does not come back" fault.
"""
import json
import os
import socket
import subprocess
import threading
import time

import requests

from ansible_helpers import PLAYBOOK_BIN, PlaybookRun, ansible_env, db_rows
from conftest import REPO
from pipeline_inventory import host_name, write_inventory

PLAYBOOKS = os.path.join(REPO, "playbooks")
LINK_SERVING = os.path.join(PLAYBOOKS, "link_serving.yml")
PIPELINE = os.path.join(PLAYBOOKS, "pipeline.yml")
PUBLISH = os.path.join(PLAYBOOKS, "publish.yml")
MIGRATE = os.path.join(PLAYBOOKS, "migrate.yml")

_HTTP = requests.Session()
_HTTP.trust_env = False


# ------------------------------------------------------------------------------------------------ processes

def supervisorctl(fed, party, *args):
    return subprocess.run([fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def program_pid(fed, party, program):
    out = supervisorctl(fed, party, "pid", program).stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


def zookeeper_pid(fed):
    try:
        with open(os.path.join(fed["root"], "state.json")) as handle:
            return (json.load(handle).get("zookeeper") or {}).get("pid")
    except (IOError, ValueError):
        return None


def pids(fed):
    """{(party id, program): pid} of every supervisord program, and ("zookeeper", "pid")."""
    found = {}
    for party_id, party in sorted(fed["parties"].items()):
        for key in ("flow_program", "serving_program"):
            program = party["supervisor"][key]
            found[(party_id, program)] = program_pid(fed, party, program)
    found[("zookeeper", "pid")] = zookeeper_pid(fed)
    return found


def flow_healthy(party):
    body = {} if party["version_path"] == "/v1/server/version/get" else {"module": "FATE"}
    try:
        reply = _HTTP.post(party["flow_url"] + party["version_path"], json=body, timeout=3)
        return reply.status_code == 200 and reply.json().get("retcode") == 0
    except (requests.RequestException, ValueError):
        return False


def serving_healthy(party):
    try:
        return _HTTP.get(party["serving"]["proxy_url"] + "/health", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def wait_until(check, timeout=60, interval=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def flow_answers(party):
    """FATE Flow answers HTTP at all (with request signing on, an unsigned health check gets 401)."""
    try:
        return _HTTP.post(party["flow_url"] + party["version_path"], json={}, timeout=3).status_code > 0
    except requests.RequestException:
        return False


def start_program(fed, party, key, signed=False):
    """Start a supervisord program again (after a test stopped it) and wait until it answers."""
    program = party["supervisor"][key]
    supervisorctl(fed, party, "start", program)
    if key == "flow_program":
        check = (lambda: flow_answers(party)) if signed else (lambda: flow_healthy(party))
    else:
        check = (lambda: serving_healthy(party))
    assert wait_until(check, 90), "%s of party %s did not come back" % (program, party["party_id"])


def restart_flow(fed, party, signed=False):
    supervisorctl(fed, party, "stop", party["supervisor"]["flow_program"])
    start_program(fed, party, "flow_program", signed=signed)


# ------------------------------------------------------------------------------------------------ files

def _skipped(path, party):
    skip_dirs = (party["log_dir"], party["serving"]["log_dir"])
    if any(path == d or path.startswith(d + os.sep) for d in skip_dirs):
        return True
    # the run lock (fate.flow.run_lock) is the run's own marker, not data a fault could lose
    return (os.path.basename(path) in ("fate_flow_sqlite.db", "fate_sqlite.db", "fate_flow_run.lock")
            or path.endswith(("-journal", "-wal")))


def file_state(fed):
    """{path: sha256} of every file under each party's FATE home and serving home (logs and the SQLite file
    left out)."""
    import hashlib
    digests = {}
    for party in fed["parties"].values():
        for root in (party["fate_home"], party["serving"]["home"]):
            for directory, _dirs, files in os.walk(root):
                for name in files:
                    path = os.path.join(directory, name)
                    if _skipped(path, party):
                        continue
                    with open(path, "rb") as handle:
                        digests[path] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def state(fed):
    return {"files": file_state(fed),
            "db": dict((pid, db_rows(party)) for pid, party in sorted(fed["parties"].items())),
            "pids": pids(fed)}


def _without_loaded_times(db):
    """The model tables with the loaded_times column dropped (a load that FATE Flow reports done counts it)."""
    return dict((pid, [row[:4] + row[5:] for row in rows]) for pid, rows in db.items())


def diff_state(before, after, ignore_pids=(), loads_allowed=False):
    """Human-readable differences (empty when nothing was lost or changed); `loads_allowed`: a model's
    loaded_times may have grown."""
    problems = []
    if loads_allowed:
        before = dict(before, db=_without_loaded_times(before["db"]))
        after = dict(after, db=_without_loaded_times(after["db"]))
    for path in sorted(set(before["files"]) | set(after["files"])):
        if before["files"].get(path) != after["files"].get(path):
            problems.append("file %s: %s -> %s" % (path, before["files"].get(path, "missing"),
                                                   after["files"].get(path, "missing")))
    if before["db"] != after["db"]:
        problems.append("model tables differ: %s -> %s" % (before["db"], after["db"]))
    for key in sorted(set(before["pids"]) | set(after["pids"])):
        if key in ignore_pids:
            continue
        if before["pids"].get(key) != after["pids"].get(key):
            problems.append("pid of %s: %s -> %s" % (key, before["pids"].get(key), after["pids"].get(key)))
    return problems


def backups_of(party):
    """Backups (<file>.<pid>.<timestamp>~) next to the party's config files."""
    found = []
    for path in party["config_files"]:
        directory, name = os.path.split(path)
        found += [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(name + ".") and
                  f.endswith("~")]
    return sorted(found)


def config_bytes(party):
    out = {}
    for path in party["config_files"]:
        with open(path, "rb") as handle:
            out[path] = handle.read()
    return out


def put_back(fed, party, original):
    """Write the party's config files back as they were, remove the backups the tests made, and restart its FATE
    Flow when a file differed or it is not healthy."""
    changed = False
    for path, data in original.items():
        with open(path, "rb") as handle:
            current = handle.read()
        if current != data:
            changed = True
            with open(path, "wb") as out:
                out.write(data)
    for backup in backups_of(party):
        os.unlink(backup)
    if changed or not flow_healthy(party) or program_pid(fed, party, party["supervisor"]["flow_program"]) is None:
        restart_flow(fed, party)


# ------------------------------------------------------------------------------------------------ ansible

def inventory(fed, directory, group_vars=None, **host_vars):
    """The SSH inventory of the federation, with per party what link_serving.yml needs (supervisord, error log),
    plus `host_vars` ({party id: {var: value}})."""
    directory = write_inventory(fed, directory, extra_group_vars=group_vars)
    path = os.path.join(directory, "hosts.yml")
    with open(path) as handle:
        hosts_yml = json.load(handle)
    for party_id, party in fed["parties"].items():
        entry = hosts_yml["all"]["hosts"][host_name(party_id)]
        entry.update({
            "fate_supervisorctl": fed["supervisorctl"],
            "fate_supervisor_config": party["supervisor"]["config"],
            "fate_flow_program": party["supervisor"]["flow_program"],
            "fate_flow_error_log": os.path.join(party["log_dir"], "error.log"),
        })
        entry.update(host_vars.get(str(party_id), {}))
    with open(path, "w") as handle:
        json.dump(hosts_yml, handle, indent=2)
    return directory


def run(workdir, inventory_dir, playbook, extra_vars=None, check=False, diff=False, verbosity=0, name="run",
        timeout=600):
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    results = os.path.join(workdir, "%s.results.json" % name)
    vars_file = os.path.join(workdir, "%s.vars.json" % name)
    with open(vars_file, "w") as handle:
        json.dump(extra_vars or {}, handle)
    args = [PLAYBOOK_BIN, "-i", str(inventory_dir), playbook, "-e", "@" + vars_file]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbosity:
        args.append("-" + "v" * verbosity)
    if os.path.exists(results):
        os.unlink(results)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=workdir,
                          env=ansible_env(workdir, FATE_RESULTS_FILE=results))
    output = proc.stdout + proc.stderr
    with open(os.path.join(workdir, "%s.log" % name), "w") as handle:
        handle.write(output)
    tasks, stats = [], {}
    if os.path.exists(results):
        with open(results) as handle:
            data = json.load(handle)
        tasks, stats = data["tasks"], data["stats"]
    return PlaybookRun(proc.returncode, tasks, stats, output, args)


def failures(run_):
    """[(host, task name, msg)] of the failed tasks that were not ignored."""
    return [(t["host"], t["name"], str(t["result"].get("msg", ""))) for t in run_.tasks
            if t["status"] in ("failed", "unreachable") and not t["ignore_errors"]]


# ------------------------------------------------------------------------------------------------ faults

class PortSquatter(object):
    """Holds (address, port) as soon as it is free (FATE Flow stopped), accepting and closing every connection,
    until release() or until `release_when()` turns true."""

    def __init__(self, address, port, release_when=None):
        self.address, self.port = address, port
        self.release_when = release_when or (lambda: False)
        self.held = threading.Event()
        self.done = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()

    def release(self):
        self._stop.set()
        self.thread.join(30)

    def _run(self):
        sock = None
        try:
            while not self._stop.is_set() and sock is None:
                candidate = socket.socket()
                candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    candidate.bind((self.address, self.port))
                    candidate.listen(16)
                    sock = candidate
                except OSError:
                    candidate.close()
                    time.sleep(0.02)
            if sock is None:
                return
            self.held.set()
            sock.settimeout(0.05)
            while not self._stop.is_set() and not self.release_when():
                try:
                    conn, _ = sock.accept()
                    conn.close()
                except socket.timeout:
                    pass
                except OSError:
                    break
        finally:
            if sock is not None:
                sock.close()
            self.done.set()


def free_port(address="127.0.0.1"):
    """A port nothing listens on right now (for "ZooKeeper down": a client port without a server)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
