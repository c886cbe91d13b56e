"""Faults around archives, destination disks and concurrent runs (issue #7, faults 5, 6, 8 and 13), injected for
real on the sandbox: the operator's playbooks (playbooks/migrate.yml, playbooks/pipeline.yml) run with
ansible-playbook over each party's own sshd, as in test_pipeline.py.

Each case asserts that the error names the party, the step and what to do; that nothing is lost (the source model,
every archive, the config files and the running services are compared by hash / pid before and after); and that a
plain rerun after the fault is removed completes with the expected result.

* transfer killed half-way: the whole ansible-playbook process group is killed (SIGKILL) while a 64 MiB archive
  streams; the .part stays (private), nothing is imported; the rerun takes over the dead run's lock, resumes the
  .part and imports once;
* a corrupted archive (same name, same size, other bytes) already at the destination: replaced after the sha256
  mismatch, and only the verified archive is imported;
* destination disk full (a 1 MiB tmpfs as the transfer dir): a clear error naming host, directory and bytes; the
  rerun after freeing space converges (skipped when mounting is not permitted);
* two pipeline runs at once against the same destination: one holds the destination run lock, the other refuses
  at once and changes nothing; its rerun converges;
* files the collection creates (archives, .part files, reports, lock files) are not world-readable.

All cases share the default sandbox with the rest of the session; each uses its own migrated model version (and
the kill case its own source model, with a large payload).
"""
import hashlib
import json
import os
import signal
import stat
import subprocess
import time

import pytest

from ansible_helpers import PLAYBOOK_BIN, ansible_env, db_rows, hash_tree
from conftest import REPO
from pipeline_inventory import write_inventory

pytestmark = pytest.mark.timeout(900)

MIGRATE = os.path.join(REPO, "playbooks", "migrate.yml")
PIPELINE = os.path.join(REPO, "playbooks", "pipeline.yml")
NEW_MODEL_ID = "arbiter-100#guest-99#host-100#model"
TRANSFER_TASK = "Move each archive from its source host (streamed, sha256-verified)"
LOCK_NAME = "fate_flow_run.lock"
BIG_MODEL_ID = "arbiter-10000#guest-9999#host-10000#faults"
BIG_VERSION = "202501010000000000005"
BIG_PAYLOAD = 64 << 20


# ------------------------------------------------------------------------------------------------ helpers

class Run(object):
    def __init__(self, rc, output, results_file):
        self.rc, self.output = rc, output
        self.tasks, self.stats = [], {}
        if os.path.exists(results_file):
            with open(results_file) as handle:
                data = json.load(handle)
            self.tasks, self.stats = data["tasks"], data["stats"]

    def task(self, name, host=None):
        found = [t for t in self.tasks if t["name"] == name and host in (None, t["host"])]
        assert found, "no task %r on %s\n%s" % (name, host, self.output[-4000:])
        return found[-1]

    def failed(self):
        return [t for t in self.tasks if t["status"] == "failed" and not t.get("ignore_errors")]

    def changed(self):
        return [(t["host"], t["name"]) for t in self.tasks if t["status"] == "changed"]

    def __repr__(self):
        return "rc=%s\n%s" % (self.rc, self.output[-6000:])


def start_playbook(workdir, inventory, playbook, extra_vars, name, args=()):
    """Start ansible-playbook in its own process group; returns (Popen, results file)."""
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    results = os.path.join(workdir, "%s.results.json" % name)
    vars_file = os.path.join(workdir, "%s.vars.json" % name)
    with open(vars_file, "w") as handle:
        json.dump(extra_vars, handle)
    log = open(os.path.join(workdir, "%s.log" % name), "w")
    proc = subprocess.Popen([PLAYBOOK_BIN, "-i", inventory, playbook, "-e", "@" + vars_file] + list(args),
                            stdout=log, stderr=subprocess.STDOUT, text=True, cwd=workdir, start_new_session=True,
                            env=ansible_env(workdir, FATE_RESULTS_FILE=results))
    proc.log, proc.results = log, results
    return proc


def finish(proc, timeout=600):
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.log.close()
    with open(proc.log.name) as handle:
        output = handle.read()
    return Run(proc.returncode, output, proc.results)


def run_playbook(workdir, inventory, playbook, extra_vars, name, args=()):
    return finish(start_playbook(workdir, inventory, playbook, extra_vars, name, args))


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def supervised_pids(party):
    """{program: pid} of the party's supervisord programs (a restart changes the pid)."""
    out = subprocess.run(["supervisorctl", "-c", party["supervisor"]["config"], "status"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PATH=os.path.dirname(PLAYBOOK_BIN) + ":" +
                                                         os.environ.get("PATH", "")))
    pids = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "pid":
            pids[fields[0]] = fields[3].rstrip(",")
    return pids


def protected_state(fed):
    """What no fault may change: every file of each source party's model cache and temp dir (the source models and
    every archive migrate wrote), every config file, and the pids of the supervised services."""
    state = {}
    for pid, party in fed["parties"].items():
        files = list(party["config_files"]) + [party["serving"]["config_file"], party["route_table"]]
        for path in files:
            if os.path.isfile(path):
                state[path] = sha256(path)
        if party["cluster"] == "source":
            state.update(hash_tree(party["model_local_cache"], party["temp_dir"]))
        state["services %s" % pid] = supervised_pids(party)
    return state


def assert_nothing_lost(fed, before):
    """Every source model file, source archive and config file is still there, byte for byte, and no service was
    restarted (new archives that a migration wrote may have been added)."""
    after = protected_state(fed)
    assert dict((key, after.get(key)) for key in before) == before
    for path in after:
        if path.endswith(".zip.sha1"):
            with open(path) as handle:
                assert hashlib.sha1(open(path[:-5], "rb").read()).hexdigest() == handle.read().strip(), path


def dest_archives(fed, version, transfer_dir=None):
    """{(party, archive name): path} of the archives of `version` expected at the destination."""
    out = {}
    for role, olds in fed["migration"]["role"].items():
        for new in fed["migration"]["migrate_role"][role][:len(olds)]:
            party = fed["parties"][str(new)]
            name = "%s#%s#%s_%s.zip" % (role, new, NEW_MODEL_ID, version)
            out[(str(new), name)] = os.path.join(transfer_dir or os.path.join(party["fate_home"],
                                                                              "imported_archives"), name)
    return out


def source_archive(fed, role, new_party, version):
    migration = fed["migration"]
    old = migration["role"][role][migration["migrate_role"][role].index(int(new_party))]
    return os.path.join(fed["parties"][str(old)]["temp_dir"],
                        "%s#%s#%s_%s.zip" % (role, new_party, NEW_MODEL_ID, version))


def imported_rows(fed, version):
    """(party, role, archive sha256) of every destination model-table row of `version`."""
    rows = []
    for pid, party in fed["parties"].items():
        if party["cluster"] == "destination":
            rows += [(pid, r[0], r[6]) for r in db_rows(party) if r[3] == version]
    return sorted(rows)


def expected_imports(fed):
    migration = fed["migration"]
    return sorted((str(new), role) for role, news in migration["migrate_role"].items() for new in news)


def world_readable(path):
    return bool(os.stat(path).st_mode & (stat.S_IROTH | stat.S_IWOTH))


def lock_files(fed):
    return [os.path.join(p["fate_home"], LOCK_NAME) for p in fed["parties"].values()
            if os.path.exists(os.path.join(p["fate_home"], LOCK_NAME))]


def assert_lock_left_by_dead_run(fed):
    """A failed run cannot release its lock (Ansible runs no play after a failed one): what is left must name an
    ansible-playbook process that is gone, so that the next run from this controller takes it over."""
    for path in lock_files(fed):
        with open(path) as handle:
            holder = json.load(handle)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        try:
            os.kill(int(holder["controller_pid"]), 0)
            alive = open("/proc/%d/stat" % int(holder["controller_pid"])).read().split(")")[-1].split()[0] != "Z"
        except OSError:
            alive = False
        assert not alive, holder


@pytest.fixture(scope="module")
def fed(sandbox):
    return sandbox()


@pytest.fixture
def inventory(fed, tmp_path):
    return write_inventory(fed, tmp_path / "inventory")


def version_for(case):
    return "faults%s_%d" % (case, int(time.time() * 1000) % 10 ** 10)


def assert_converged(fed, run, version, transfer_dir=None):
    """The rerun succeeded: every destination archive is the source's, each job role imported exactly once, from
    the verified archive, and no partial file or lock is left."""
    assert run.rc == 0, run
    for (party, name), path in dest_archives(fed, version, transfer_dir).items():
        role = name.split("#", 1)[0]
        assert sha256(path) == sha256(source_archive(fed, role, party, version)), path
        assert not world_readable(path), path
        assert not os.path.exists(os.path.join(os.path.dirname(path), "." + name + ".part"))
    rows = imported_rows(fed, version)
    assert [(p, r) for p, r, _ in rows] == expected_imports(fed), rows
    for party, role, digest in rows:
        if digest:
            assert digest == sha256(source_archive(fed, role, party, version)), (party, role)
    assert lock_files(fed) == []


# ------------------------------------------------------------------------------------------------ fault 6

def test_corrupted_archive_at_destination_is_replaced_never_imported(fed, inventory, tmp_path):
    version = version_for(6)
    extra = {"fate_unify_model_version": version, "fate_report_dir": str(tmp_path / "reports")}
    # Migrate only (no destination host matches), so that the archives' names and sizes are known.
    run = run_playbook(tmp_path, inventory, MIGRATE, dict(extra, fate_destination_hosts="no_such_group"), "migrate")
    assert run.rc == 0, run
    archives = dest_archives(fed, version)
    for (party, name), path in archives.items():
        data = bytearray(open(source_archive(fed, name.split("#", 1)[0], party, version), "rb").read())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])   # same size, other bytes
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(bytes(data))
        os.chmod(path, 0o600)
    before = protected_state(fed)

    run = run_playbook(tmp_path, inventory, MIGRATE, extra, "run")
    assert_converged(fed, run, version)
    for host in ("party99", "party100"):
        for item in run.task(TRANSFER_TASK, host)["result"]["results"]:
            assert item["changed"] is True and item["bytes_transferred"] == item["size"] > 0, item
            assert item["resumed"] is False and item["verified"] is True
    assert_nothing_lost(fed, before)


# ------------------------------------------------------------------------------------------------ fault 8

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (a path with a space and a '#'), filled up; unmounted afterwards."""
    mount = tmp_path / "full disk #8"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs to fill up (needs root or CAP_SYS_ADMIN): %s" % proc.stderr.strip())
    try:
        filler = str(mount / "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass                                         # ENOSPC: the disk is full
        finally:
            os.close(fd)
        yield str(mount), filler
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


def test_destination_disk_full_fails_clearly_and_rerun_converges(fed, inventory, tmp_path, small_disk):
    mount, filler = small_disk
    version = version_for(8)
    extra = {"fate_unify_model_version": version, "fate_report_dir": str(tmp_path / "reports"),
             "fate_transfer_dir": mount}
    before = protected_state(fed)
    run = run_playbook(tmp_path, inventory, MIGRATE, extra, "full")
    assert run.rc != 0, run
    failed = run.failed()
    assert failed and all(t["name"] == TRANSFER_TASK for t in failed), run
    for task in failed:
        for item in task["result"]["results"]:
            if not item.get("failed"):
                continue
            msg = item["msg"]
            assert "not enough space on host '%s'" % task["host"] in msg, msg
            assert mount in msg and "bytes" in msg and "are free" in msg, msg
            assert item["needed_bytes"] > item["free_bytes"] >= 0, item
            assert "the source is untouched and nothing was written" in msg
    assert sorted(os.listdir(mount)) == ["filler"]          # no .part, no archive
    assert imported_rows(fed, version) == []
    assert_nothing_lost(fed, before)
    assert_lock_left_by_dead_run(fed)

    os.unlink(filler)                                        # free the space, run again
    run = run_playbook(tmp_path, inventory, MIGRATE, extra, "rerun")
    assert_converged(fed, run, version, transfer_dir=mount)
    assert_nothing_lost(fed, before)


# ------------------------------------------------------------------------------------------------ fault 5

@pytest.fixture(scope="module")
def big_model(fed):
    """A source model (its own model id) whose guest copy carries 64 MiB that deflate cannot shrink."""
    from fate_sandbox import model_store, profiles
    roles = dict((r, list(ids)) for r, ids in fed["migration"]["role"].items())
    for pid, party in fed["parties"].items():
        if party["cluster"] != "source":
            continue
        profile = profiles.get(party["version"])
        for role in party["roles"]:
            path = model_store.write_trained_model(
                party["fate_home"], profile, role, int(pid), roles=roles, model_id=BIG_MODEL_ID,
                version=BIG_VERSION, parent=False)
            if role == "guest":
                payload = os.path.join(path, "variables", "data", "payload_0", "model", "Payload")
                if not os.path.exists(payload):
                    os.makedirs(os.path.dirname(payload), exist_ok=True)
                    with open(payload, "wb") as handle:
                        for _ in range(BIG_PAYLOAD >> 20):
                            handle.write(os.urandom(1 << 20))
    return {"fate_model_id": BIG_MODEL_ID, "fate_model_version": BIG_VERSION}


def test_transfer_killed_half_way_resumes_and_imports_once(fed, inventory, tmp_path, big_model):
    version = version_for(5)
    extra = dict(big_model, fate_unify_model_version=version, fate_report_dir=str(tmp_path / "reports"))
    (party, name), path = [(k, v) for k, v in dest_archives(fed, version).items() if k[1].startswith("guest#")][0]
    part = os.path.join(os.path.dirname(path), "." + name + ".part")
    before = protected_state(fed)

    proc = start_playbook(tmp_path, inventory, MIGRATE, extra, "killed")
    deadline, size = time.monotonic() + 300, 0
    while time.monotonic() < deadline and proc.poll() is None:
        size = os.path.getsize(part) if os.path.exists(part) else 0
        if size >= 1 << 20:
            os.killpg(proc.pid, signal.SIGKILL)          # ansible-playbook, its workers and their ssh clients
            break
        time.sleep(0.02)
    killed = finish(proc, timeout=60)
    assert killed.rc == -signal.SIGKILL, "the transfer ended before it could be killed (%d bytes seen):\n%r" % (
        size, killed)
    time.sleep(1)                                         # the destination's writer sees EOF and stops
    full = os.path.getsize(source_archive(fed, "guest", party, version))
    assert full > BIG_PAYLOAD
    assert not os.path.exists(path)                      # nothing half-written at the final path
    kept = os.path.getsize(part)
    assert 0 < kept < full, (kept, full)
    assert not world_readable(part)
    assert imported_rows(fed, version) == []
    assert_nothing_lost(fed, before)

    run = run_playbook(tmp_path, inventory, MIGRATE, extra, "rerun")
    assert_converged(fed, run, version)
    assert "took over the stale run lock" in run.output, run    # the killed run's lock: its process is gone
    guest = [i for i in run.task(TRANSFER_TASK, "party%s" % party)["result"]["results"]
             if i["item"]["archive_name"] == name][0]
    assert guest["resumed"] is True and 0 < guest["resumed_from"] <= kept, guest
    assert guest["bytes_transferred"] == full - guest["resumed_from"]
    assert_nothing_lost(fed, before)


# ------------------------------------------------------------------------------------------------ fault 13

@pytest.fixture(scope="module")
def concurrent_runs(fed, tmp_path_factory):
    """Two pipeline.yml runs of the same model version, started together against one destination."""
    workdir = tmp_path_factory.mktemp("concurrent")
    inventory = write_inventory(fed, workdir / "inventory")
    version = version_for(13)
    before = protected_state(fed)
    procs = [start_playbook(workdir / name, inventory, PIPELINE, {
        "fate_unify_model_version": version, "fate_report_dir": str(workdir / name / "reports")}, name)
        for name in ("a", "b")]
    lock_modes = {}
    while any(proc.poll() is None for proc in procs):
        for path in lock_files(fed):
            try:
                lock_modes[path] = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                pass
        time.sleep(0.05)
    runs = [finish(proc) for proc in procs]
    return {"workdir": workdir, "inventory": inventory, "version": version, "before": before, "runs": runs,
            "lock_modes": lock_modes}


def test_two_pipeline_runs_at_once_one_refuses_cleanly_no_mixed_state(fed, concurrent_runs):
    runs, version = concurrent_runs["runs"], concurrent_runs["version"]
    assert sorted(run.rc == 0 for run in runs) == [False, True], runs
    winner, loser = sorted(runs, key=lambda run: run.rc != 0)
    # The loser stopped at the lock: a message naming the destination host and party, the step, and what to do.
    assert [t["name"] for t in loser.failed()][-1] == "Stop the run, another run is working on the destination"
    msg = loser.failed()[-1]["result"]["msg"]
    assert "run lock on party" in msg and "(party " in msg, msg
    assert "another fate.flow run is working on this host" in msg and LOCK_NAME in msg, msg
    assert "changed nothing" in msg and "run again" in msg, msg
    assert loser.changed() == [] and not any(t["name"].startswith("Migrate") for t in loser.tasks), loser
    # The winner did everything, once; nothing of the source was lost.
    assert_converged(fed, winner, version)
    assert_nothing_lost(fed, concurrent_runs["before"])

    # The refused run, run again, finds everything done.
    workdir = concurrent_runs["workdir"]
    rerun = run_playbook(workdir / "rerun", concurrent_runs["inventory"], PIPELINE, {
        "fate_unify_model_version": version, "fate_report_dir": str(workdir / "rerun" / "reports")}, "rerun")
    assert_converged(fed, rerun, version)
    for host in ("party99", "party100"):
        for item in rerun.task(TRANSFER_TASK, host)["result"]["results"]:
            assert item["changed"] is False and item["bytes_transferred"] == 0, item


# ------------------------------------------------------------------------------------------------ security

def test_files_the_collection_creates_are_not_world_readable(fed, concurrent_runs):
    """Archives at the destination, run reports and lock files (the .part of an interrupted transfer is checked in
    the kill case)."""
    version, workdir = concurrent_runs["version"], concurrent_runs["workdir"]
    created = list(dest_archives(fed, version).values())
    for name in ("a", "b"):
        reports = os.path.join(str(workdir), name, "reports")
        if os.path.isdir(reports):
            created += [os.path.join(reports, f) for f in os.listdir(reports)]
    assert len(created) >= 5, created           # 3 archives, the winner's JSON and text reports
    for path in created:
        assert not world_readable(path), "%s has mode %o" % (path, stat.S_IMODE(os.stat(path).st_mode))
    # The destination lock files, seen while the runs held them.
    modes = concurrent_runs["lock_modes"]
    assert modes, "no lock file was seen while the runs ran"
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
