"""Two organisations, each with its own inventory, run the same playbooks one after the other (issue #6).

Organisation A owns parties 9999 (source guest) and 99 (destination guest), organisation B owns 10000 (source host and
arbiter) and 100 (destination host and arbiter). Each operator's inventory holds only its own parties
(pipeline_inventory.write_inventory(..., parties=...)); the job roles name all four. On one sandbox (1.6 -> 1.11):

1. B runs migrate.yml first: it fails with a hint (the guest's side submits the MULTIPLE migration) and changes nothing;
2. A runs migrate.yml: the MULTIPLE migration from 9999 makes both source FATE Flows write their archives; A moves and
   imports only its own (guest 99) and never touches B's hosts;
3. B runs migrate.yml: it finds its archives by FATE's archive name on 10000, moves and imports them on 100;
4. A runs publish.yml: load on 99 and 100, bind, inference through 99's serving-proxy;
5. A reruns migrate.yml: nothing changes, the MULTIPLE migration is not submitted again, 0 bytes move.
"""
import json
import os
import time

from ansible_helpers import hash_tree, model_state
from conftest import REPO, flow_post
from pipeline_inventory import write_inventory
from test_pipeline import run_pipeline

MIGRATE = os.path.join(REPO, "playbooks", "migrate.yml")
PUBLISH = os.path.join(REPO, "playbooks", "publish.yml")
ORG_A = ["9999", "99"]
ORG_B = ["10000", "100"]
NEW_MODEL_ID = "arbiter-100#guest-99#host-100#model"


def fate_state(fed):
    state = model_state(fed)
    for party in fed["parties"].values():
        state.update(hash_tree(os.path.join(party["fate_home"], "imported_archives")))
    return state


def read_report(report_dir, name):
    with open(os.path.join(report_dir, name + ".json")) as handle:
        return json.load(handle)


def imported(fed, party_id, role, version):
    """The party's FATE Flow knows the migrated model for `role`."""
    answer = flow_post(fed["parties"][party_id], "/v1/model/query",
                       {"model_id": NEW_MODEL_ID, "model_version": version, "role": role,
                        "party_id": party_id}).json()
    return answer["retcode"] == 0 and len(answer.get("data") or []) > 0


def test_two_organisations_one_after_the_other(sandbox, tmp_path):
    fed = sandbox()
    inv_a = write_inventory(fed, tmp_path / "org_a", parties=ORG_A)
    inv_b = write_inventory(fed, tmp_path / "org_b", parties=ORG_B)
    version = "two_orgs_%d" % int(time.time())
    report_dir = str(tmp_path / "reports")

    def extra(org, step):
        return {"fate_unify_model_version": version, "fate_report_dir": report_dir,
                "fate_report_name": "%s_%s" % (org, step)}

    # 1. B before A: B cannot find its archives; clear hint, nothing changed.
    before = fate_state(fed)
    run = run_pipeline(tmp_path, inv_b, playbook=MIGRATE, extra_vars=extra("b", "early"), name="b_early")
    assert run.rc != 0, run
    assert "Run migrate.yml on the guest's side first" in run.output, run
    assert "fate_migrate_mode=single" in run.output
    assert fate_state(fed) == before

    # 2. A: MULTIPLE migration from the guest's side, A's own transfer and import.
    run = run_pipeline(tmp_path, inv_a, playbook=MIGRATE, extra_vars=extra("a", "migrate"), name="a_migrate")
    assert run.rc == 0, run
    assert set(run.stats) == {"localhost", "party9999", "party99"}, run.stats
    submit = [t for t in run.tasks if t["name"] == "Submit the MULTIPLE migration of every party from the source guest"]
    assert [(t["host"], t["status"]) for t in submit] == [("party9999", "changed")], submit
    assert sorted((p["role"], str(p["old_party_id"])) for p in submit[0]["result"]["parties"]) == \
        [("arbiter", "10000"), ("guest", "9999"), ("host", "10000")]
    report = read_report(report_dir, "a_migrate")
    assert [(p["role"], p["old_party_id"], p["new_party_id"], p["migrate_status"], p["transfer_status"],
             p["import_status"], p["verified"]) for p in report["parties"]] == \
        [("guest", "9999", "99", "migrated", "transferred", "imported", True)]
    # B's archives were written on B's source host (by its own FATE Flow), not moved or imported by A.
    b_temp = fed["parties"]["10000"]["temp_dir"]
    b_archives = sorted("%s#100#%s_%s.zip" % (role, NEW_MODEL_ID, version) for role in ("arbiter", "host"))
    assert all(os.path.isfile(os.path.join(b_temp, name)) for name in b_archives), os.listdir(b_temp)
    assert not os.path.exists(os.path.join(fed["parties"]["100"]["fate_home"], "imported_archives", b_archives[0]))
    assert imported(fed, "99", "guest", version) and not imported(fed, "100", "host", version)

    # 3. B: finds its archives by name, moves and imports them on 100.
    run = run_pipeline(tmp_path, inv_b, playbook=MIGRATE, extra_vars=extra("b", "migrate"), name="b_migrate")
    assert run.rc == 0, run
    assert set(run.stats) == {"localhost", "party10000", "party100"}, run.stats
    assert not [t for t in run.tasks if t["action"] == "fate.flow.model_migrate" and t["status"] == "changed"]
    report = read_report(report_dir, "b_migrate")
    assert sorted((p["role"], p["old_party_id"], p["new_party_id"], p["archive_name"], p["migrate_status"],
                   p["transfer_status"], p["import_status"], p["verified"]) for p in report["parties"]) == \
        [(role, "10000", "100", name, "found", "transferred", "imported", True)
         for role, name in zip(("arbiter", "host"), b_archives)]
    assert all(p["bytes_moved"] > 0 for p in report["parties"])
    assert imported(fed, "100", "host", version) and imported(fed, "100", "arbiter", version)

    # 4. A publishes from the guest's side: load on both destination parties, bind, inference.
    run = run_pipeline(tmp_path, inv_a, playbook=PUBLISH, extra_vars=extra("a", "publish"), name="a_publish")
    assert run.rc == 0, run
    publish = read_report(report_dir, "a_publish")["publish"]
    assert sorted((p["role"], p["party_id"], p["retcode"]) for p in publish["load_parties"]) == \
        [("guest", "99", 0), ("host", "100", 0)]
    assert publish["bind_status"] == "bound" and publish["inference"]["retcode"] == 0, publish
    assert isinstance(publish["inference"]["data"]["score"], float)

    # 5. The guest's side reruns: its own archive from the first run is found, so the MULTIPLE migration is not
    # submitted again (B's archives stay as B moved them); nothing changes, nothing moves. (B's side of a rerun is
    # step 3 again: it only finds archives.)
    before = fate_state(fed)
    run = run_pipeline(tmp_path, inv_a, playbook=MIGRATE, extra_vars=extra("a", "rerun"), name="a_rerun")
    assert run.rc == 0, run
    assert all(s["changed"] == 0 for s in run.stats.values()), run.stats
    assert [t["status"] for t in run.tasks
            if t["name"] == "Submit the MULTIPLE migration of every party from the source guest"] == ["skipped"]
    report = read_report(report_dir, "a_rerun")
    assert report["bytes_moved"] == 0
    assert [(p["migrate_status"], p["import_status"]) for p in report["parties"]] == \
        [("already_migrated", "already_imported")]
    assert fate_state(fed) == before
