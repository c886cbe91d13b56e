"""playbooks/pipeline.yml end to end on a sandbox federation (issue #6).

Each test starts (or reuses) a sandbox with the conftest fixture, writes an inventory shaped like
inventories/sandbox from its federation.json (pipeline_inventory.py) plus each destination party's serving link
(fate_servings: its own FATE-Serving, as the sandbox configures it; how supervisord restarts its FATE Flow), and runs
ansible-playbook in a subprocess with the collection staged as it ships:

1. check mode on the untouched model: succeeds, no byte changes in any file of any party's FATE home or serving
   home (their logs aside), no supervisord program started or stopped; no report file is written;
2. the real run (playbooks/pipeline.yml from the checkout): succeeds, the JSON and text reports are written (mode
   0600) with per party the old and new ids, archive, sha256 and bytes moved, the import status, the serving link
   (unchanged on the sandbox, nothing restarted), the publish status, load and bind statuses, the service id and an
   inference answer with retcode 0 and a score from the migrated model; set_stats carries the report;
3. a second run (as the installed collection's fate.flow.pipeline): every task ok, changed=0 on every host, 0 bytes
   moved, publish status already_published (FATE-Serving's answer names the model it serves);
4. check mode again: no byte changes, no process started or stopped.
(1. and 4. run for 1.6 -> 1.11 only: check mode does not depend on the release, and test_security.py runs every
playbook in check mode.)

test_link_serving_fixes_a_wrong_serving: a wrong servings entry on one destination party is fixed by
playbooks/link_serving.yml, only that party's FATE Flow is restarted, the link is verified, and a rerun is all ok.

The sandboxes are shared with other tests of the session, so each test uses its own migrated model version.
"""
import glob
import hashlib
import json
import os
import re
import stat
import subprocess
import time

import pytest

from ansible_helpers import PLAYBOOK_BIN, ansible_env, hash_tree, model_state
from conftest import REPO
from pipeline_inventory import host_name, write_inventory

PIPELINE = os.path.join(REPO, "playbooks", "pipeline.yml")
LINK_SERVING = os.path.join(REPO, "playbooks", "link_serving.yml")


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


def _is_log(path):
    # What the emulated services append to on every request they answer, reads included (FATE Flow's and
    # FATE-Serving's logs). Everything else of a FATE home must keep every byte.
    return "/logs/" in path or path.endswith(".log")


def home_state(fed):
    """{path: sha256} of every file under each party's FATE home and FATE-Serving home, except their logs."""
    state = {}
    for party in fed["parties"].values():
        for path, digest in hash_tree(party["fate_home"], party["serving"]["home"]).items():
            if not _is_log(path):
                state[path] = digest
    return state


def supervisorctl(fed, party, *args):
    return subprocess.run([fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def program_pids(fed):
    """{(party, program): pid} of every party's FATE Flow and FATE-Serving under supervisord."""
    pids = {}
    for party_id, party in fed["parties"].items():
        for program in (party["supervisor"]["flow_program"], party["supervisor"]["serving_program"]):
            out = supervisorctl(fed, party, "pid", program).stdout.strip()
            assert out.isdigit() and int(out) > 0, (party_id, program, out)
            pids[(party_id, program)] = int(out)
    return pids


def differences(before, after):
    return sorted(set(p for p in set(before) | set(after) if before.get(p) != after.get(p)))


def link_vars(fed, inventory):
    """host_vars of the destination parties: the serving link the sandbox configured (mode A, the party's own
    FATE-Serving) and how their FATE Flow is restarted (the party's supervisord)."""
    directory = os.path.join(str(inventory), "host_vars")
    os.makedirs(directory, exist_ok=True)
    for party_id, party in fed["parties"].items():
        if party["cluster"] != "destination":
            continue
        with open(os.path.join(directory, "%s.yml" % host_name(party_id)), "w") as handle:
            json.dump({"fate_servings": party["serving"]["grpc_address"],
                       "fate_restart_method": "supervisord",
                       "fate_supervisorctl": fed["supervisorctl"],
                       "fate_supervisor_config": party["supervisor"]["config"],
                       "fate_flow_program": party["supervisor"]["flow_program"],
                       "fate_flow_error_log": os.path.join(party["log_dir"], "error.log")}, handle, indent=2)
    return inventory


def expected_parties(fed):
    """(role, old party, new party) of every copy the migration makes."""
    migration = fed["migration"]
    return sorted((role, str(old), str(new)) for role, olds in migration["role"].items()
                  for old, new in zip(olds, migration["migrate_role"][role]))


def check_mode_changes_nothing(fed, tmp_path, inventory, extra, pids, name):
    """Runs the pipeline in check mode: it succeeds, no byte of any FATE or serving home changes and no supervised
    process is started or stopped. Returns the run."""
    before = home_state(fed)
    run = run_pipeline(tmp_path, inventory, check=True, extra_vars=extra, name=name)
    assert run.rc == 0, run
    assert differences(before, home_state(fed)) == []
    assert program_pids(fed) == pids
    return run


@pytest.mark.parametrize("source,destination", [("1.6", "1.11"), ("1.11", "1.11")])
def test_pipeline_runs_reruns_and_check_mode(sandbox, tmp_path, source, destination):
    fed = sandbox(source=source, destination=destination)
    inventory = link_vars(fed, write_inventory(fed, tmp_path / "inventory"))
    pids = program_pids(fed)
    version = "pipeline_%s_%d" % (source.replace(".", ""), int(time.time()))
    report_dir = str(tmp_path / "reports")
    extra = {"fate_unify_model_version": version, "fate_report_dir": report_dir}
    json_report = os.path.join(report_dir, "fate_flow_%s.json" % version)
    text_report = os.path.join(report_dir, "fate_flow_%s.txt" % version)
    new_model_id = "arbiter-100#guest-99#host-100#model"
    guest = fed["parties"]["99"]

    # Check mode is release-independent playbook logic: the 1.6 -> 1.11 run checks it before and after (and
    # test_security.py every playbook); 1.11 -> 1.11 runs the pipeline and its rerun only.
    with_check_mode = source == "1.6"

    # 1. Check mode before anything was migrated: nothing changes on any party, no process starts or stops.
    if with_check_mode:
        check_mode_changes_nothing(fed, tmp_path, inventory, extra, pids, "check1")
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
    # The sandbox's destination FATE Flows already point at their servings: nothing to change, nothing restarted.
    assert sorted((l["party_id"], l["mode"], l["status"], l["restarted"], l["verified"])
                  for l in report["serving_link"]) == [(p, "servings", "unchanged", False, True)
                                                       for p in sorted(dest_parties(fed))]
    assert report["serving_link_status"] == "unchanged" and report["restarted_parties"] == []
    assert program_pids(fed) == pids
    publish = report["publish"]
    assert publish["model_id"] == new_model_id and publish["loaded_version"] == version
    assert report["publish_status"] == publish["status"] == "published"
    assert (publish["deploy_status"], publish["load_status"], publish["bind_status"]) == \
        ("not_needed", "loaded", "bound")
    assert sorted((p["role"], p["party_id"], p["retcode"]) for p in publish["load_parties"]) == \
        [("guest", "99", 0), ("host", "100", 0)]
    assert report["service_id"] == "fate_flow_%s" % version
    assert report["inference"]["retcode"] == 0
    assert isinstance(report["inference"]["data"]["score"], float)
    assert report["inference"]["data"]["modelVersion"] == version
    assert report["inference"]["data"]["modelId"] == "guest#99#" + new_model_id
    with open(text_report) as handle:
        text = handle.read()
    assert "guest 9999 -> guest 99" in text and "inference: retcode 0, score" in text
    assert "Serving link (unchanged)" in text and "Publish (published)" in text
    assert "fate_flow_report" in run.output        # set_stats, shown by ANSIBLE_SHOW_CUSTOM_STATS
    # The service answers outside Ansible too.
    import requests
    answer = requests.post(guest["serving"]["inference_url"], timeout=30, json={
        "head": {"serviceId": report["service_id"]},
        "body": {"featureData": {"x0": 0.25, "x1": -0.5, "x2": 1.0, "x3": 0.1},
                 "sendToRemoteFeatureData": {"device_id": "pytest-0001"}}}).json()
    assert answer["retcode"] == 0, answer

    # 3. A second run, as the installed collection's playbook: everything is done already, all ok.
    before = fate_state(fed)
    run = run_pipeline(tmp_path, inventory, playbook="fate.flow.pipeline", extra_vars=extra, name="run2")
    assert run.rc == 0, run
    assert run.changed() == [], run.changed()
    assert dict((h, s["changed"]) for h, s in run.stats.items()) == \
        {"localhost": 0, "party9999": 0, "party10000": 0, "party99": 0, "party100": 0}
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in run.stats.values()), run.stats
    assert not [t for t in run.tasks if t["action"] in ("fate.flow.model_load", "fate.flow.model_bind")
                and t["status"] != "skipped"]
    assert fate_state(fed) == before
    with open(json_report) as handle:
        report = json.load(handle)
    assert report["bytes_moved"] == 0
    assert sorted(set((p["migrate_status"], p["transfer_status"], p["import_status"]) for p in report["parties"])) == \
        [("already_migrated", "unchanged", "already_imported")]
    assert report["publish_status"] == "already_published"
    assert (report["publish"]["load_status"], report["publish"]["bind_status"]) == ("already_loaded", "already_bound")
    assert report["serving_link_status"] == "unchanged"
    assert report["inference"]["retcode"] == 0 and report["inference"]["data"]["modelVersion"] == version
    assert program_pids(fed) == pids

    # 4. Check mode after the runs: still no byte changes, no process started or stopped.
    if with_check_mode:
        run = check_mode_changes_nothing(fed, tmp_path, inventory, extra, pids, "check2")
        assert run.changed() == [], run.changed()


def dest_parties(fed):
    return [p for p, party in fed["parties"].items() if party["cluster"] == "destination"]


def test_link_serving_fixes_a_wrong_serving(sandbox, tmp_path):
    """A wrong servings entry on party 100: link_serving.yml fixes it, restarts only 100's FATE Flow, verifies; a
    rerun is all ok. The sandbox is the one test_pipeline_runs_reruns_and_check_mode uses (1.6 -> 1.11)."""
    fed = sandbox(source="1.6", destination="1.11")
    inventory = link_vars(fed, write_inventory(fed, tmp_path / "inventory"))
    party = fed["parties"]["100"]
    (config,) = party["config_files"]
    with open(config, "rb") as handle:
        original = handle.read()
    right = party["serving"]["grpc_address"].encode()
    wrong = re.sub(rb":\d+$", b":1", right)             # nothing listens on port 1
    assert original.count(right) == 1
    pids = program_pids(fed)
    extra = {"fate_report_dir": str(tmp_path / "reports"), "fate_report_name": "link"}
    try:
        with open(config, "wb") as handle:
            handle.write(original.replace(right, wrong))
        run = run_pipeline(tmp_path, inventory, playbook=LINK_SERVING, extra_vars=extra, name="link1")
        assert run.rc == 0, run
        with open(config, "rb") as handle:
            assert handle.read() == original           # fixed in place, every other byte kept
        after = program_pids(fed)
        flow, serving = party["supervisor"]["flow_program"], party["supervisor"]["serving_program"]
        assert after[("100", flow)] != pids[("100", flow)]                      # restarted
        assert dict((k, v) for k, v in after.items() if k != ("100", flow)) == \
            dict((k, v) for k, v in pids.items() if k != ("100", flow))          # nothing else
        assert run.stats["party100"]["changed"] > 0 and run.stats["party99"]["changed"] == 0, run.stats
        with open(os.path.join(extra["fate_report_dir"], "link.json")) as handle:
            report = json.load(handle)
        assert report["operation"] == "link_serving"
        links = dict((l["party_id"], l) for l in report["serving_link"])
        assert (links["100"]["status"], links["100"]["restarted"], links["100"]["verified"]) == ("changed", True, True)
        assert links["100"]["changed_keys"] == {config: ["servings.hosts"]}
        assert (links["99"]["status"], links["99"]["restarted"]) == ("unchanged", False)
        assert report["restarted_parties"] == ["100"] and report["serving_link_status"] == "changed"
        # FATE Flow is healthy on the fixed config, and a rerun changes nothing.
        pids = program_pids(fed)
        run = run_pipeline(tmp_path, inventory, playbook=LINK_SERVING, extra_vars=extra, name="link2")
        assert run.rc == 0, run
        assert run.changed() == [] and program_pids(fed) == pids
    finally:
        with open(config, "rb") as handle:
            if handle.read() != original:
                with open(config, "wb") as out:
                    out.write(original)
                supervisorctl(fed, party, "restart", party["supervisor"]["flow_program"])
        for backup in glob.glob(glob.escape(config) + ".*~"):
            os.unlink(backup)
