"""playbooks/pipeline.yml end to end on a sandbox federation (issue #6).

Each test starts (or reuses) a sandbox with the conftest fixture, writes an inventory shaped like
inventories/sandbox from its federation.json (pipeline_inventory.py), and runs ansible-playbook in a subprocess
with the collection staged as it ships:

1. check mode on the untouched model: succeeds, and no byte changes in any party's model_local_cache, temp dir or
   imported_archives; no report file is written;
2. the real run (playbooks/pipeline.yml from the checkout): succeeds, the JSON and text reports are written (mode
   0600) with per party the old and new ids, archive, sha256 and bytes moved, the import, load and bind statuses,
   the service id and an inference answer with retcode 0 and a score; set_stats carries the report;
3. a second run (as the installed collection's fate.flow.pipeline): every task ok, except the two tasks documented
   as acting on every run, model_load and model_bind on the initiator (docs/pipeline.md); nothing moves;
4. check mode again: no byte changes.

The sandboxes are shared with other tests of the session, so each test uses its own migrated model version.
"""
import hashlib
import json
import os
import stat
import subprocess
import time

import pytest

from ansible_helpers import PLAYBOOK_BIN, ansible_env, hash_tree, model_state
from conftest import REPO
from pipeline_inventory import host_name, write_inventory

PIPELINE = os.path.join(REPO, "playbooks", "pipeline.yml")
# The tasks that act (and report changed) on every run; everything else must be ok on a rerun.
ALWAYS_CHANGED = [("fate.flow.model_bind", "Bind the service id"),
                  ("fate.flow.model_load", "Load the model into FATE-Serving on every guest and host party")]


class Run(object):
    def __init__(self, proc, results_file, seconds):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.seconds = seconds
        with open(results_file) as handle:
            data = json.load(handle)
        self.tasks, self.stats = data["tasks"], data["stats"]

    def changed(self):
        return sorted((t["host"], t["action"], t["name"]) for t in self.tasks if t["status"] == "changed")

    def __repr__(self):
        return "rc=%s after %.0fs\n%s" % (self.rc, self.seconds, self.output[-6000:])


def run_pipeline(workdir, inventory, playbook=PIPELINE, check=False, extra_vars=None, name="run"):
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    results = os.path.join(workdir, "%s.results.json" % name)
    vars_file = os.path.join(workdir, "%s.vars.json" % name)
    with open(vars_file, "w") as handle:
        json.dump(extra_vars or {}, handle)
    args = [PLAYBOOK_BIN, "-i", inventory, playbook, "-e", "@" + vars_file]
    if check:
        args.append("--check")
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=workdir,
                          env=ansible_env(workdir, FATE_RESULTS_FILE=results, ANSIBLE_SHOW_CUSTOM_STATS="1"))
    run = Run(proc, results, time.monotonic() - started)
    with open(os.path.join(workdir, "%s.log" % name), "w") as handle:
        handle.write(run.output)
    return run


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def fate_state(fed):
    """Every file under each party's model_local_cache, temp dir and imported_archives, with its sha256."""
    state = model_state(fed)
    for party in fed["parties"].values():
        state.update(hash_tree(os.path.join(party["fate_home"], "imported_archives")))
    return state


def expected_parties(fed):
    """(role, old party, new party) of every copy the migration makes."""
    migration = fed["migration"]
    return sorted((role, str(old), str(new)) for role, olds in migration["role"].items()
                  for old, new in zip(olds, migration["migrate_role"][role]))


@pytest.mark.parametrize("source,destination", [("1.6", "1.11"), ("1.11", "1.11")])
def test_pipeline_runs_reruns_and_check_mode(sandbox, tmp_path, source, destination):
    fed = sandbox(source=source, destination=destination)
    inventory = write_inventory(fed, tmp_path / "inventory")
    version = "pipeline_%s_%d" % (source.replace(".", ""), int(time.time()))
    report_dir = str(tmp_path / "reports")
    extra = {"fate_unify_model_version": version, "fate_report_dir": report_dir}
    json_report = os.path.join(report_dir, "fate_flow_%s.json" % version)
    text_report = os.path.join(report_dir, "fate_flow_%s.txt" % version)
    new_model_id = "arbiter-100#guest-99#host-100#model"
    guest = fed["parties"]["99"]

    # 1. Check mode before anything was migrated: nothing changes on any party.
    before = fate_state(fed)
    run = run_pipeline(tmp_path, inventory, check=True, extra_vars=extra, name="check1")
    assert run.rc == 0, run
    assert fate_state(fed) == before
    assert not os.path.exists(json_report)

    # 2. The real run.
    run = run_pipeline(tmp_path, inventory, extra_vars=extra, name="run1")
    assert run.rc == 0, run
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in run.stats.values()), run.stats
    for path in (json_report, text_report):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    with open(json_report) as handle:
        report = json.load(handle)
    assert report["operation"] == "pipeline"
    assert report["check_mode"] is False
    assert report["model"]["model_id"] == new_model_id
    assert report["model"]["model_version"] == version
    assert report["model"]["source_model_id"] == fed["model"]["model_id"]
    assert sorted((p["role"], p["old_party_id"], p["new_party_id"]) for p in report["parties"]) == \
        expected_parties(fed)
    for p in report["parties"]:
        src_party, dst_party = fed["parties"][p["old_party_id"]], fed["parties"][p["new_party_id"]]
        assert p["source_host"] == host_name(p["old_party_id"])
        assert p["destination_host"] == host_name(p["new_party_id"])
        assert p["archive_name"] == "%s#%s#%s_%s.zip" % (p["role"], p["new_party_id"], new_model_id, version)
        assert p["source_archive"] == os.path.join(src_party["temp_dir"], p["archive_name"])
        assert p["destination_archive"] == os.path.join(dst_party["fate_home"], "imported_archives",
                                                        p["archive_name"])
        assert p["sha256"] == sha256(p["source_archive"]) == sha256(p["destination_archive"])
        assert p["bytes_moved"] == os.path.getsize(p["destination_archive"]) > 0
        assert (p["migrate_status"], p["transfer_status"], p["import_status"], p["verified"]) == \
            ("migrated", "transferred", "imported", True), p
    assert report["bytes_moved"] == sum(p["bytes_moved"] for p in report["parties"])
    publish = report["publish"]
    assert publish["model_id"] == new_model_id and publish["loaded_version"] == version
    assert (publish["deploy_status"], publish["load_status"], publish["bind_status"]) == \
        ("not_needed", "loaded", "bound")
    assert sorted((p["role"], p["party_id"], p["retcode"]) for p in publish["load_parties"]) == \
        [("guest", "99", 0), ("host", "100", 0)]
    assert report["service_id"] == "fate_flow_%s" % version
    assert report["inference"]["retcode"] == 0
    assert isinstance(report["inference"]["data"]["score"], float)
    assert report["inference"]["data"]["modelVersion"] == version
    with open(text_report) as handle:
        text = handle.read()
    assert "guest 9999 -> guest 99" in text and "inference: retcode 0, score" in text
    assert "fate_flow_report" in run.output        # set_stats, shown by ANSIBLE_SHOW_CUSTOM_STATS
    # The service answers outside Ansible too.
    import requests
    answer = requests.post(guest["serving"]["inference_url"], timeout=30, json={
        "head": {"serviceId": report["service_id"]},
        "body": {"featureData": {"x0": 0.25, "x1": -0.5, "x2": 1.0, "x3": 0.1},
                 "sendToRemoteFeatureData": {"device_id": "pytest-0001"}}}).json()
    assert answer["retcode"] == 0, answer

    # 3. A second run, as the installed collection's playbook: only load and bind act again.
    run = run_pipeline(tmp_path, inventory, playbook="fate.flow.pipeline", extra_vars=extra, name="run2")
    assert run.rc == 0, run
    assert run.changed() == [("party99", action, name) for action, name in ALWAYS_CHANGED], run.changed()
    assert dict((h, s["changed"]) for h, s in run.stats.items()) == \
        {"localhost": 0, "party9999": 0, "party10000": 0, "party99": 2, "party100": 0}
    with open(json_report) as handle:
        report = json.load(handle)
    assert report["bytes_moved"] == 0
    assert sorted(set((p["migrate_status"], p["transfer_status"], p["import_status"]) for p in report["parties"])) == \
        [("already_migrated", "unchanged", "already_imported")]
    assert report["inference"]["retcode"] == 0

    # 4. Check mode after the runs: still no byte changes.
    before = fate_state(fed)
    run = run_pipeline(tmp_path, inventory, check=True, extra_vars=extra, name="check2")
    assert run.rc == 0, run
    assert fate_state(fed) == before
