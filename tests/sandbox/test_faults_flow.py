"""Issue #7, FATE Flow side: faults injected for real while the operator's playbooks run.

Every case runs playbooks/migrate.yml, publish.yml or pipeline.yml from the checkout over real SSH (an inventory
written by pipeline_inventory.py: each party host is reached through its own sshd and runs the modules with
/usr/bin/python3), injects one fault for real, and asserts three things:

(a) the error names the party (the failing host, `party<id>`, and the party in the message), the step (the task) and
    what to do;
(b) nothing is lost: every file under each party's model_local_cache, temp dir and imported_archives, every config
    file of FATE Flow and FATE-Serving is still there with the same sha256 (files may be added, none changed or
    removed), and the services run as before (supervisord: same programs RUNNING, same pids, except a program the
    test itself stopped and started);
(c) a plain rerun after the fault is removed completes with the expected result.

Faults: FATE Flow stopped (supervisorctl) on the source at migrate and on the destination at import; HTTP 500/502
answers and timeouts (resent when safe, then a clear failure) and a party failing inside migrate's top-level
retcode 0 "success", both through the emulator's fault switch (sandbox/fate_sandbox/flow/faults.py); a zip with
'..' and absolute entries; a model or version that does not exist; hostile values in every input.

One sandbox (the default 1.6 -> 1.11 federation, shared with other files of the session); every case uses its own
migrated model version ("flt_..."), so the cases do not depend on each other's state.
"""
import hashlib
import json
import os
import re
import subprocess
import time
import zipfile

import pytest

from ansible_helpers import PLAYBOOK_BIN, ansible_env, hash_tree
from conftest import REPO
from pipeline_inventory import write_inventory

from fate_sandbox.flow import faults

pytestmark = pytest.mark.timeout(900)

PLAYBOOKS = os.path.join(REPO, "playbooks")
NEW_MODEL_ID = "arbiter-100#guest-99#host-100#model"
UNREACHABLE = "FATE Flow at %s is unreachable: could not connect ([Errno 111] Connection refused) (after 4 attempt(s))"
CHECK_FLOW = "Check flow_url and that FATE Flow is running and reachable from the host running this task."
ANSIBLE_CFG = """[defaults]
gathering = explicit
retry_files_enabled = False
forks = 10

[connection]
pipelining = True

[ssh_connection]
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
"""


# ------------------------------------------------------------------------------------------------ helpers

class Env(object):
    def __init__(self, fed, workdir):
        self.fed = fed
        self.workdir = str(workdir)
        self.inventory = write_inventory(fed, os.path.join(self.workdir, "inventory"))
        self.reports = os.path.join(self.workdir, "reports")
        with open(os.path.join(self.workdir, "ansible.cfg"), "w") as handle:
            handle.write(ANSIBLE_CFG)       # as the project's ansible.cfg: SSH pipelining, connection reuse

    def party(self, party_id):
        return self.fed["parties"][str(party_id)]

    def home(self, party_id):
        return self.party(party_id)["fate_home"]


class Run(object):
    def __init__(self, rc, output, results_file, seconds):
        self.rc, self.output, self.seconds = rc, output, seconds
        self.tasks, self.stats = [], {}
        if os.path.exists(results_file):
            with open(results_file) as handle:
                data = json.load(handle)
            self.tasks, self.stats = data["tasks"], data["stats"]

    def failures(self):
        """[(host, task name, [messages])] of the failed tasks (loop items: each failed item's message)."""
        out = []
        for task in self.tasks:
            if task["status"] != "failed" or task["ignore_errors"]:
                continue
            result = task["result"]
            items = [r for r in result.get("results", []) if r.get("failed")]
            out.append((task["host"], task["name"], [r.get("msg", "") for r in items] or [result.get("msg", "")]))
        return out

    def result(self, name, host):
        found = [t for t in self.tasks if t["name"] == name and t["host"] == host]
        assert found, "no task %r on %s\n%s" % (name, host, self)
        return dict(found[-1]["result"], failed=found[-1]["status"] == "failed")

    def __repr__(self):
        return "rc=%s after %.0fs\n%s" % (self.rc, self.seconds, self.output[-8000:])


def start_playbook(env, playbook, name, extra=None):
    """Start ansible-playbook (the operator's command) in the background; finish with wait_playbook."""
    results = os.path.join(env.workdir, "%s.results.json" % name)
    vars_file = os.path.join(env.workdir, "%s.vars.json" % name)
    variables = {"fate_report_dir": env.reports}
    variables.update(extra or {})
    with open(vars_file, "w") as handle:
        json.dump(variables, handle)
    log = open(os.path.join(env.workdir, "%s.log" % name), "w+")
    proc = subprocess.Popen([PLAYBOOK_BIN, "-i", env.inventory, os.path.join(PLAYBOOKS, playbook), "-e", "@" + vars_file],
                            stdout=log, stderr=subprocess.STDOUT, text=True, cwd=env.workdir,
                            env=ansible_env(env.workdir, FATE_RESULTS_FILE=results))
    return proc, log, results, time.monotonic()


def wait_playbook(started, timeout=600):
    proc, log, results, begun = started
    proc.wait(timeout=timeout)
    log.seek(0)
    output = log.read()
    log.close()
    return Run(proc.returncode, output, results, time.monotonic() - begun)


def run(env, playbook, name, extra=None):
    return wait_playbook(start_playbook(env, playbook, name, extra))


def report(env, version):
    with open(os.path.join(env.reports, "fate_flow_%s.json" % re.sub(r"[^A-Za-z0-9_.-]", "_", version))) as handle:
        return json.load(handle)


def supervisorctl(env, party_id, *args):
    party = env.party(party_id)
    return subprocess.run([env.fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def services(env):
    """{(party, program): (state, pid)} from every party's supervisord."""
    state = {}
    for party_id in env.fed["parties"]:
        for line in supervisorctl(env, party_id, "status").stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                pid = re.search(r"pid (\d+)", line)
                state[(party_id, fields[0])] = (fields[1], pid.group(1) if pid else None)
    return state


def stop_flow(env, party_id):
    party = env.party(party_id)
    done = supervisorctl(env, party_id, "stop", party["supervisor"]["flow_program"])
    assert done.returncode == 0, done.stdout + done.stderr


def start_flow(env, party_id):
    """Start a party's FATE Flow and wait until it answers."""
    import requests
    party = env.party(party_id)
    supervisorctl(env, party_id, "start", party["supervisor"]["flow_program"])
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            requests.post(party["flow_url"] + party["version_path"], json={"module": "FATE"}, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError("FATE Flow of %s did not come back" % party_id)


def snapshot(env):
    """What must never be lost: files (sha256) under every party's models, archives and configs; services."""
    files = {}
    for party in env.fed["parties"].values():
        files.update(hash_tree(party["model_local_cache"], party["temp_dir"],
                               os.path.join(party["fate_home"], "imported_archives")))
        for path in party["config_files"] + [party["route_table"], party.get("fate_env") or "",
                                             party["serving"]["config_file"], party["serving"]["route_table"]]:
            if path and os.path.exists(path):
                with open(path, "rb") as handle:
                    files[path] = hashlib.sha256(handle.read()).hexdigest()
    return {"files": files, "services": services(env)}


def assert_nothing_lost(before, after, restarted=()):
    """Every file of `before` is in `after` with the same sha256; services alike (but `restarted` programs, which
    must be RUNNING again)."""
    lost = dict((path, digest) for path, digest in before["files"].items() if after["files"].get(path) != digest)
    assert not lost, "files lost or changed: %s" % sorted(lost)[:10]
    for key, (state, pid) in before["services"].items():
        now = after["services"].get(key)
        if key in restarted:
            assert now and now[0] == "RUNNING", (key, now)
        else:
            assert now == (state, pid), "service %s changed: %s -> %s" % (key, (state, pid), now)


def archives_of(env, version):
    """The archives (zip files) under the parties' temp dirs and imported_archives whose name holds `version`."""
    found = []
    for party in env.fed["parties"].values():
        for root in (party["temp_dir"], os.path.join(party["fate_home"], "imported_archives")):
            if os.path.isdir(root):
                found += [os.path.join(root, n) for n in os.listdir(root) if version in n and n.endswith(".zip")]
    return sorted(found)


def statuses(env, version):
    """{(role, new party): (migrate, transfer, import status)} from the run report."""
    return dict(((p["role"], p["new_party_id"]), (p["migrate_status"], p["transfer_status"], p["import_status"]))
                for p in report(env, version)["parties"])


EXPECTED = [("arbiter", "100"), ("guest", "99"), ("host", "100")]


def assert_converged(env, run_, version):
    assert run_.rc == 0, run_
    got = statuses(env, version)
    assert sorted(got) == EXPECTED, got
    for key, (migrated, transferred, imported) in got.items():
        assert migrated in ("migrated", "already_migrated"), (key, got)
        assert transferred in ("transferred", "unchanged"), (key, got)
        assert imported in ("imported", "already_imported"), (key, got)


@pytest.fixture(scope="module")
def env(sandbox, tmp_path_factory):
    environment = Env(sandbox(), tmp_path_factory.mktemp("faults flow#"))
    yield environment
    for party_id in environment.fed["parties"]:
        faults.clear(environment.home(party_id))
        party = environment.party(party_id)
        if "RUNNING" not in supervisorctl(environment, party_id, "status", party["supervisor"]["flow_program"]).stdout:
            start_flow(environment, party_id)


@pytest.fixture(autouse=True)
def no_faults_left(env):
    yield
    for party_id in env.fed["parties"]:
        faults.clear(env.home(party_id))


# ------------------------------------------------------------------------------------------------ 1, 2

@pytest.fixture(scope="module")
def source_down(env):
    """Case 1, run once: its rerun also gives the migrated, moved and imported version ("flt_base") that the cases
    needing a converged model (7, 14) reuse, so no case migrates a model only to have one."""
    version = "flt_base"
    before = snapshot(env)
    stop_flow(env, 9999)
    try:
        failed = run(env, "migrate.yml", "src_down", {"fate_unify_model_version": version})
    finally:
        start_flow(env, 9999)
    after = snapshot(env)
    archives = archives_of(env, version)
    rerun = run(env, "migrate.yml", "src_down_rerun", {"fate_unify_model_version": version})
    return dict(version=version, before=before, after=after, failed=failed, archives=archives, rerun=rerun,
                statuses=statuses(env, version) if rerun.rc == 0 else None)


@pytest.fixture(scope="module")
def converged_version(env, source_down):
    assert_converged(env, source_down["rerun"], source_down["version"])
    return source_down["version"]


def test_source_flow_down_at_migrate(env, source_down):
    guest = env.party(9999)
    failed = source_down["failed"]
    assert failed.rc != 0, failed
    # (a) the source guest's host fails its pre-flight check, saying what to check; nothing is migrated anywhere.
    assert failed.failures() == [("party9999", "Check that this party's FATE Flow is healthy and can migrate",
                                  [UNREACHABLE % guest["flow_url"] + ". " + CHECK_FLOW])], failed.failures()
    assert "fatal: [party9999]: FAILED!" in failed.output
    assert source_down["archives"] == []
    # (b) nothing lost; FATE Flow 9999 was restarted by the test, everything else runs as before.
    assert_nothing_lost(source_down["before"], source_down["after"],
                        restarted=[("9999", guest["supervisor"]["flow_program"])])
    # (c) a plain rerun migrates, moves and imports every copy.
    assert_converged(env, source_down["rerun"], source_down["version"])
    assert set(source_down["statuses"].values()) == {("migrated", "transferred", "imported")}


def test_destination_flow_down_at_import(env):
    """The destination guest's FATE Flow goes down after the pre-flight checks, while the sources migrate: the
    migrations are held by the fault switch until it is stopped, so the import is the first step that meets it."""
    version = "flt_dst_down"
    dest = env.party(99)
    before = snapshot(env)
    for party_id in (9999, 10000):
        faults.hold(env.home(party_id), "migrate")
        faults.inject(env.home(party_id), {"path": "/v1/model/migrate", "hold": "migrate"})
    started = start_playbook(env, "migrate.yml", "dst_down", {"fate_unify_model_version": version})
    try:
        for party_id in (9999, 10000):
            assert faults.wait_hits(env.home(party_id), "/v1/model/migrate", alive=lambda: started[0].poll() is None), \
                wait_playbook(started)
        stop_flow(env, 99)
    finally:
        for party_id in (9999, 10000):
            faults.release(env.home(party_id), "migrate")
    try:
        failed = wait_playbook(started)
    finally:
        start_flow(env, 99)
    assert failed.rc != 0, failed
    # (a) the import on party 99 fails, naming its FATE Flow and what to check.
    failures = failed.failures()
    assert [(host, name) for host, name, _ in failures] == [("party99", "Import each archive for its job role")], \
        failures
    assert failures[0][2] == [UNREACHABLE % dest["flow_url"] + ". " + CHECK_FLOW], failures
    assert re.search(r"failed: \[party99\] \(item=guest 99: guest#99#%s_%s\.zip\)" % (re.escape(NEW_MODEL_ID), version),
                     failed.output), failed
    # (b) nothing lost: the migrated archives stay where migrate and transfer put them.
    assert_nothing_lost(before, snapshot(env), restarted=[("99", dest["supervisor"]["flow_program"])])
    assert len(archives_of(env, version)) == 6, archives_of(env, version)       # 3 at the sources, 3 moved
    # (c) the rerun imports on 99; nothing is migrated or moved again.
    rerun = run(env, "migrate.yml", "dst_down_rerun", {"fate_unify_model_version": version})
    assert_converged(env, rerun, version)
    got = statuses(env, version)
    assert got[("guest", "99")] == ("already_migrated", "unchanged", "imported"), got


# ------------------------------------------------------------------------------------------------ 3

def test_flow_5xx_and_timeouts_are_resent_when_safe_then_fail_clearly(env):
    """On the destination's imports: 99 answers 502 twice on the upload, 500 once and then one timeout on the
    model query (all resent: the task succeeds with warnings); 100 answers 502 four times in a row on its first
    upload (a clear failure after the retries) and takes longer than the timeout on its second (not resent: the
    upload may still complete, and does)."""
    version = "flt_5xx"
    before = snapshot(env)
    faults.inject(env.home(99), {"path": "/v1/model/import", "times": 2, "status": 502},
                  {"path": "/v1/model/query", "times": 1, "status": 500},
                  {"path": "/v1/model/query", "times": 1, "delay": 14})
    faults.inject(env.home(100), {"path": "/v1/model/import", "times": 4, "status": 502},
                  {"path": "/v1/model/import", "times": 1, "delay": 14})
    failed = run(env, "migrate.yml", "5xx", {"fate_unify_model_version": version, "import_timeout": 8})
    assert failed.rc != 0, failed
    # 99: every fault was resent and the import went through, with a warning per retry.
    imported = failed.result("Import each archive for its job role", "party99")["results"][0]
    assert imported["status"] == "imported", imported
    for warning in ("FATE Flow /v1/model/import: HTTP 502; retrying in 1.0 s (attempt 2 of 4)",
                    "FATE Flow /v1/model/query: HTTP 500; retrying in 1.0 s (attempt 2 of 4)",
                    "FATE Flow /v1/model/query: no answer within 8 seconds; retrying in 2.0 s (attempt 3 of 4)"):
        assert "[WARNING]: " + warning in failed.output, failed
    # 100: the 502s end in a clear failure, the slow upload is not resent; each names the step and what to do.
    failures = failed.failures()
    assert [(host, name) for host, name, _ in failures] == [("party100", "Import each archive for its job role")], \
        failures
    url = env.party(100)["flow_url"]
    messages = sorted(failures[0][2])
    assert len(messages) == 2, messages
    gateway = [m for m in messages if "HTTP 502" in m]
    slow = [m for m in messages if "did not answer" in m]
    assert gateway and gateway[0].startswith(
        "FATE Flow at %s answered /v1/model/import with HTTP 502 (502 Bad Gateway 502 Bad Gateway nginx/1.20.1), "
        "4 attempts in a row. FATE Flow, or a proxy in front of it, is failing: check that FATE Flow runs and what "
        "its logs (fate_flow_stat.log) say, then run again." % url), messages
    assert slow and slow[0] == (
        "FATE Flow at %s did not answer POST /v1/model/import within 8 seconds. It was not resent: the operation may "
        "still complete on the server, so check its state before running again (a rerun of the task does), or "
        "increase timeout." % url), messages
    assert re.search(r"failed: \[party100\] \(item=(host|arbiter) 100: ", failed.output), failed
    assert [h["rule"].get("status") for h in faults.hits(env.home(100))] == [502, 502, 502, 502, None]
    # (b) nothing lost.
    assert_nothing_lost(before, snapshot(env))
    # (c) with the faults gone, a plain rerun imports the copy that failed and finds the slow one imported.
    faults.clear(env.home(99))
    faults.clear(env.home(100))
    slow_import = os.path.join(env.party(100)["model_local_cache"], "host#100#" + NEW_MODEL_ID, version)
    deadline = time.time() + 120            # the slow upload's 14 s delay runs out on the server: wait for it
    while not os.path.isdir(slow_import) and time.time() < deadline:
        time.sleep(0.5)
    assert os.path.isdir(slow_import), slow_import
    time.sleep(1)
    rerun = run(env, "migrate.yml", "5xx_rerun", {"fate_unify_model_version": version})
    assert_converged(env, rerun, version)
    got = statuses(env, version)
    assert sorted(got[k][2] for k in (("host", "100"), ("arbiter", "100"))) == ["already_imported", "imported"], got
    assert got[("guest", "99")][2] == "already_imported", got


# ------------------------------------------------------------------------------------------------ 4

def test_party_fails_inside_migrate_success(env):
    """Party 10000's arbiter copy (migrated first: roles in name order) fails inside FATE Flow's retcode 0
    "success" (its disk is full); its host copy and the guest 9999 migrate."""
    version = "flt_party"
    temp = env.party(10000)["temp_dir"]
    archive = "arbiter#100#%s_%s.zip" % (NEW_MODEL_ID, version)
    before = snapshot(env)
    faults.inject(env.home(10000), {"path": "/v1/model/migrate/do", "times": 1, "retcode": 100,
                                    "retmsg": "[Errno 28] No space left on device: '%s'" % os.path.join(temp, archive)})
    failed = run(env, "migrate.yml", "party", {"fate_unify_model_version": version})
    assert failed.rc != 0, failed
    hit = faults.hits(env.home(10000))
    assert len(hit) == 1 and hit[0]["path"] == "/v1/model/migrate/do"
    failures = failed.failures()
    assert [(host, name) for host, name, _ in failures] == [("party10000", "Migrate this party's copies of the model")], \
        failures
    assert failures[0][2] == [
        "/v1/model/migrate failed on 1 of 2 parties - arbiter 10000: [Errno 28] No space left on device: '%s'. That "
        "party's FATE Flow host ran out of disk space: free space under its FATE home (temp and model_local_cache "
        "directories), then run again; parties already done are not done twice." % os.path.join(temp, archive)]
    result = failed.result("Migrate this party's copies of the model", "party10000")
    assert result["reason"] == "party" and result["retcode"] == 0 and result["retmsg"] == "success"
    assert sorted((p["role"], p["ok"]) for p in result["parties"]) == [("arbiter", False), ("host", True)]
    assert_nothing_lost(before, snapshot(env))
    assert not os.path.exists(os.path.join(temp, archive))
    # (c) the rerun migrates only the copy that failed.
    rerun = run(env, "migrate.yml", "party_rerun", {"fate_unify_model_version": version})
    assert_converged(env, rerun, version)
    got = statuses(env, version)
    assert got[("arbiter", "100")][0] == "migrated" and got[("host", "100")][0] == "already_migrated", got


# ------------------------------------------------------------------------------------------------ 7

def hostile_zip(path, good_archive, escape):
    """A copy of a real model archive plus an entry that climbs out with '..' and one with an absolute path."""
    with zipfile.ZipFile(good_archive) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("../../../../../../../../../../.." + escape, "owned")
        dst.writestr(escape, "owned")


def test_zip_with_unsafe_entries_is_refused(env, converged_version, tmp_path):
    """The archive where migrate writes a party's copy is replaced by a zip with a '..' entry: migrate.yml refuses
    to reuse it before anything moves; model_import on the destination host refuses the same zip before
    uploading it (FATE Flow would unpack it). Neither entry is ever written."""
    version = converged_version
    before = snapshot(env)
    guest_archive = os.path.join(env.party(9999)["temp_dir"], "guest#99#%s_%s.zip" % (NEW_MODEL_ID, version))
    with open(guest_archive, "rb") as handle:
        original = handle.read()
    escape = os.path.join(str(tmp_path), "zip-slip-marker")
    hostile_zip(str(tmp_path / "hostile.zip"), guest_archive, escape)
    with open(str(tmp_path / "hostile.zip"), "rb") as handle, open(guest_archive, "wb") as out:
        out.write(handle.read())
    try:
        failed = run(env, "migrate.yml", "zip", {"fate_unify_model_version": version})
        dest_copy = os.path.join(env.workdir, "hostile #1.zip")
        with open(dest_copy, "wb") as out, open(guest_archive, "rb") as handle:
            out.write(handle.read())
        direct = run_module_on(env, "party99", "zip_import", [{
            "name": "Import a hostile zip", "ignore_errors": True, "fate.flow.model_import": {
                "flow_url": env.party(99)["flow_url"], "archive": dest_copy, "role": "guest", "party_id": 99,
                "model_version": version + "_direct"}}])
    finally:
        with open(guest_archive, "wb") as out:
            out.write(original)
    assert failed.rc != 0, failed
    failures = failed.failures()
    assert [(h, n) for h, n, _ in failures] == [("party9999", "Migrate this party's copies of the model")], failures
    message = failures[0][2][0]
    assert message.startswith("archive %s is unsafe: entry '../../../../" % guest_archive), message
    assert "contains '..', so FATE Flow would unpack it outside the model directory" in message
    assert message.endswith("It is where this migration writes its archive: remove it (FATE Flow writes it again), "
                            "then run again."), message
    refused = direct.result("Import a hostile zip", "party99")
    assert refused["failed"] and "is unsafe: entry '../../../../" in refused["msg"], refused
    assert refused["msg"].endswith("nothing was uploaded: use the archive that FATE Flow's migrate or export wrote."), \
        refused["msg"]
    assert not os.path.exists(escape) and not os.path.exists(os.path.join("/", "zip-slip-marker"))
    after = snapshot(env)
    assert_nothing_lost(before, after)
    party_dirs = tuple(os.path.dirname(env.home(p)) + os.sep for p in (99, 9999))
    assert [p for p in set(after["files"]) - set(before["files"]) if p.startswith(party_dirs)] == []
    # (c) with the real archive back, the rerun finds everything done.
    rerun = run(env, "migrate.yml", "zip_rerun", {"fate_unify_model_version": version})
    assert_converged(env, rerun, version)
    assert set(statuses(env, version).values()) == {("already_migrated", "unchanged", "already_imported")}


def run_module_on(env, host, name, tasks, extra=None):
    """Run tasks on one party host of the inventory (over SSH), as an operator's own playbook would."""
    path = os.path.join(env.workdir, "%s.yml" % name)
    with open(path, "w") as handle:
        json.dump([{"name": name, "hosts": host, "gather_facts": False, "tasks": tasks}], handle)
    return run(env, path, name, extra)


# ------------------------------------------------------------------------------------------------ 14

def test_missing_model_or_version(env, converged_version):
    """migrate.yml of a version the source does not have, publish.yml of a version never imported, and the modules
    (over SSH on the destination guest's host) importing an archive that is not there, loading and binding a
    version that does not exist: each refuses, naming the party and the step, and changes nothing."""
    missing = "20990101000000000000"
    before = snapshot(env)
    migrate = run(env, "migrate.yml", "missing_migrate", {"fate_model_version": missing,
                                                           "fate_unify_model_version": "flt_missing"})
    assert migrate.rc != 0, migrate
    model_id = env.fed["model"]["model_id"]
    assert sorted((h, n, sorted(m)) for h, n, m in migrate.failures()) == [
        ("party10000", "Fail when the model is missing", [
            "Model %s version %s does not exist as %s 10000 on %s." % (model_id, missing, role, env.party(10000)["flow_url"])
            for role in ("arbiter", "host")]),
        ("party9999", "Fail when the model is missing", [
            "Model %s version %s does not exist as guest 9999 on %s." % (model_id, missing, env.party(9999)["flow_url"])])], \
        migrate.failures()
    publish = run(env, "publish.yml", "missing_publish", {"fate_unify_model_version": "flt_missing"})
    assert publish.rc != 0, publish
    assert publish.failures() == [("party99", "Fail when the model is not on the initiator", [
        "Model %s version flt_missing is not on the initiator guest 99 (%s): import it first."
        % (NEW_MODEL_ID, env.party(99)["flow_url"])])], publish.failures()
    guest = env.party(99)
    common = {"flow_url": guest["flow_url"], "model_id": NEW_MODEL_ID, "model_version": "flt_missing",
              "role": env.fed["migration"]["migrate_role"]}
    modules = run_module_on(env, "party99", "missing_modules", [
        {"name": "Import an archive that is not there", "ignore_errors": True, "fate.flow.model_import": {
            "flow_url": guest["flow_url"], "archive": os.path.join(guest["fate_home"], "imported_archives",
                                                                   "guest#99#nothing #1.zip"),
            "role": "guest", "party_id": 99}},
        {"name": "Load a version that does not exist", "ignore_errors": True, "fate.flow.model_load": common},
        {"name": "Bind a version that does not exist", "ignore_errors": True,
         "fate.flow.model_bind": dict(common, service_id="flt_missing")},
    ])
    assert modules.rc == 0, modules
    imported = modules.result("Import an archive that is not there", "party99")
    assert imported["failed"] and imported["msg"] == (
        "archive %s does not exist on the host where the module runs"
        % os.path.join(guest["fate_home"], "imported_archives", "guest#99#nothing #1.zip")), imported
    loaded = modules.result("Load a version that does not exist", "party99")
    assert loaded["failed"] and loaded["reason"] == "party", loaded
    assert loaded["msg"].startswith("/v1/model/load failed on 2 of 2 parties - guest 99: "), loaded["msg"]
    assert "not exists in model local cache" in loaded["msg"] and loaded["msg"].endswith(
        "check model_id and model_version, or import it on that party first."), loaded["msg"]
    bound = modules.result("Bind a version that does not exist", "party99")
    assert bound["failed"] and "load the model first (fate.flow.model_load)" in bound["msg"], bound
    assert_nothing_lost(before, snapshot(env))
    # (c) with a version that was imported, the same publish.yml loads, binds and answers an inference.
    rerun = run(env, "publish.yml", "missing_rerun", {"fate_unify_model_version": converged_version})
    assert rerun.rc == 0, rerun
    published = report(env, converged_version)["publish"]
    assert (published["load_status"], published["bind_status"]) == ("loaded", "bound"), published
    assert report(env, converged_version)["inference"]["retcode"] == 0


# ------------------------------------------------------------------------------------------------ 15

MARK = "fate_flow_marker_%d_" % os.getpid()
HOSTILE = "v 1;cd;touch %sa;$(cd;touch %sb)`cd;touch %sc`'\"#x" % (MARK, MARK, MARK)


def markers(env):
    """Marker files a shell running one of the hostile values would have created (in $HOME, as `cd` goes there)."""
    found = []
    for directory in set([os.path.expanduser("~"), "/root", env.workdir, "/tmp"]):
        if os.path.isdir(directory):
            found += [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(MARK)]
    return found


def test_hostile_inputs_never_reach_a_shell(env):
    """Shell metacharacters, quotes, '#', spaces, very long strings and wrong types in the pipeline's extra vars and
    in every FATE Flow module's parameters: each is refused with a message naming the input, or used literally
    (the whole pipeline runs with a version, service id, transfer and report directory full of them); no marker
    file is ever created."""
    before = snapshot(env)
    # Refused before anything is migrated.
    bad_ids = run(env, "migrate.yml", "hostile_ids", {"fate_source_guest": "9999;cd;touch %sd" % MARK,
                                                      "fate_unify_model_version": "flt_hostile_ids"})
    assert bad_ids.rc != 0
    failures = bad_ids.failures()
    assert failures and all(h in ("party9999", "party10000") and n.startswith("Check the job-role maps")
                            for h, n, _ in failures), failures
    assert "9999;cd;touch %sd" % MARK in failures[0][2][0] and "party ids made of digits" in failures[0][2][0], failures
    assert archives_of(env, "flt_hostile_ids") == []
    assert_nothing_lost(before, snapshot(env))

    # Every module, over SSH on the destination guest's host: each hostile or ill-typed parameter is refused.
    guest = env.party(99)
    url = guest["flow_url"]
    roles = env.fed["migration"]["migrate_role"]
    base = {"flow_url": url, "model_id": NEW_MODEL_ID, "model_version": "flt_hostile"}
    tasks = []

    def task(name, module, args):
        tasks.append({"name": name, "ignore_errors": True, "fate.flow." + module: args})

    task("flow_url", "flow_info", {"flow_url": "http://127.0.0.1:1;cd;touch %se" % MARK})
    task("timeout", "flow_info", {"flow_url": url, "timeout": "$(cd;touch %sf)" % MARK})
    task("retries", "model_info", dict(base, retries=-1))
    task("info version", "model_info", dict(base, model_version="x\n$(cd;touch %sg)" % MARK))
    task("info party", "model_info", dict(base, party_id="99;cd;touch %sh" % MARK))
    task("migrate role", "model_migrate", dict(base, flow_url=env.party(9999)["flow_url"], role="guest",
                                               migrate_role=roles))
    task("migrate party", "model_migrate", dict(base, flow_url=env.party(9999)["flow_url"],
                                                role={"guest": ["$(cd;touch %si)" % MARK], "host": [10000]},
                                                migrate_role={"guest": [99], "host": [100]}))
    source = dict(flow_url=env.party(9999)["flow_url"], model_id=env.fed["model"]["model_id"],
                  model_version=env.fed["model"]["deployed_version"], role=env.fed["model"]["roles"], migrate_role=roles)
    task("migrate version", "model_migrate", dict(source, model_version="../../" + HOSTILE))
    task("migrate long", "model_migrate", dict(source, unify_model_version="v" * 5000))
    task("migrate mode", "model_migrate", dict(base, flow_url=env.party(9999)["flow_url"], role=env.fed["model"]["roles"],
                                               migrate_role=roles, federated_mode="SINGLE;touch x"))
    task("import role", "model_import", {"flow_url": url, "archive": "/nonexistent", "role": "guest;id",
                                         "party_id": 99})
    task("import archive", "model_import", {"flow_url": url, "archive": "$(cd;touch %sj) #1.zip" % MARK,
                                            "role": "guest", "party_id": 99})
    task("load initiator", "model_load", dict(base, role=roles, initiator="guest 99"))
    task("load version", "model_load", dict(base, role=roles, model_version="a" * 300))
    task("deploy id", "model_deploy", dict(base, model_id="../" + HOSTILE))
    task("deploy list", "model_deploy", dict(base, cpn_list="not a list $(id)"))
    task("bind service", "model_bind", dict(base, role=roles, service_id="svc:$(cd;touch %sk)" % MARK))
    task("bind newline", "model_bind", dict(base, role=roles, service_id="svc\n%sl" % MARK))
    task("bind servings", "model_bind", dict(base, role=roles, service_id="s", servings=["h:1;touch x"]))
    checked = run_module_on(env, "party99", "hostile_modules", tasks)
    assert checked.rc == 0, checked
    expected = {
        "flow_url": "flow_url must be an http:// or https:// URL of a FATE Flow",
        "timeout": "argument 'timeout' is of type",
        "retries": "retries must be between 0 and 100, got -1",
        "info version": "model_version 'x\\n$(cd;touch ",
        "info party": "party_id '99;cd;touch ",
        "migrate role": "argument 'role' is of type",
        "migrate party": "role.guest '$(cd;touch ",
        "migrate version": "model_version '../../v 1;cd;touch ",
        "migrate long": "unify_model_version 'vvvvvvvv",
        "migrate mode": "value of federated_mode must be one of: SINGLE, MULTIPLE, got: SINGLE;touch x",
        "import role": "value of role must be one of: guest, host, arbiter, got: guest;id",
        "import archive": "archive $(cd;touch ",
        "load initiator": "argument 'initiator' is of type",
        "load version": "model_version 'aaaa",
        "deploy id": "model_id '../v 1;cd;touch ",
        "deploy list": None,
        "bind service": "service_id 'svc:$(cd;touch ",
        "bind newline": "service_id 'svc\\n",
        "bind servings": "servings entry 'h:1;touch x' is not a host:port address",
    }
    for name, start in expected.items():
        result = checked.result(name, "party99")
        assert result.get("failed"), (name, result)
        assert start is None or result["msg"].startswith(start), (name, result["msg"])
        assert len(result["msg"]) < 600, (name, len(result["msg"]))
    assert "contains '/' or '\\', which would make FATE Flow write outside its model directories" in \
        checked.result("migrate version", "party99")["msg"]
    assert "...(5002 characters) is 5000 bytes long; FATE Flow stores it in file names of at most 255 bytes" in \
        checked.result("migrate long", "party99")["msg"]
    assert_nothing_lost(before, snapshot(env))

    # Used literally: the whole pipeline with hostile (but valid) values.
    version = HOSTILE
    service = "svc %s$(cd;touch %sm)`cd;touch %sn`'\"#" % (MARK, MARK, MARK)
    report_dir = os.path.join(env.workdir, "report $(cd;touch %so) '\"#" % MARK)
    transfer_dir = os.path.join(env.workdir, "transfer $(cd;touch %sp) ;'\"#" % MARK)
    done = run(env, "pipeline.yml", "hostile_pipeline", {
        "fate_unify_model_version": version, "fate_service_id": service, "fate_report_dir": report_dir,
        "fate_transfer_dir": transfer_dir})
    assert done.rc == 0, done
    with open(os.path.join(report_dir, "fate_flow_%s.json" % re.sub(r"[^A-Za-z0-9_.-]", "_", version))) as handle:
        got = json.load(handle)
    assert got["model"]["model_version"] == version and got["service_id"] == service
    assert sorted((p["role"], p["new_party_id"], p["import_status"]) for p in got["parties"]) == [
        ("arbiter", "100", "imported"), ("guest", "99", "imported"), ("host", "100", "imported")]
    for p in got["parties"]:
        assert os.path.dirname(p["destination_archive"]) == transfer_dir and os.path.exists(p["destination_archive"])
        assert p["archive_name"].endswith("_%s.zip" % version)
    assert got["inference"]["retcode"] == 0 and got["inference"]["data"]["modelVersion"] == version
    assert markers(env) == [], markers(env)
    assert_nothing_lost(before, snapshot(env))
