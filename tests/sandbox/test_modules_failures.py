"""Issue #3: failure paths of the fate.flow modules, run with ansible-playbook against the sandbox federation.

One playbook for both version pairs (1.6 -> 1.11, 1.11 -> 1.8; one local inventory host per sandbox, run in
parallel) whose failing tasks have ignore_errors, so that each failure is one task result to assert on: its
message must say what went wrong and what to do, and carry the structured keys (reason, retcode, party). It
runs at -vvv with request signing keys set through module_defaults of the action group; the secret key must
appear nowhere in the output or the results.

Covered: a migration whose every party fails (missing model version) and one where only one party fails inside
FATE's top-level "success"; party ids that are not integers (migrate, import) and a party not in the model's
roles (import); a missing archive; deploy of a missing model; model_info of a missing model (not a failure);
import check mode, import, the same archive again (changed=false) and a different model under the same id and
version (1.9+: refused without force, replaced with force; <= 1.8: refused, force unsupported); bind before load
(FATE-Serving 104, "load the model first"); a service id FATE-Serving refuses; load of a model that is not there,
for real and in check mode; load and bind in check mode. Check-mode imports and loads are shown to change
nothing by looking the model up afterwards (model_info: not there / loaded_times 0) and by the real task after
them still having something to do.

Checks made before any FATE Flow is asked, or on the same code path on every release (the whole-migration
failure, non-integer party ids, a party not in the model, a missing archive, a refused service id, bind before
load, check-mode load of a missing model) run on 1.6 -> 1.11 only; the rest runs on both pairs.

The sandboxes are shared with other test files: every version written here starts with "mod_".
"""
import json
import secrets

import pytest

from ansible_helpers import local_hosts, play, run_playbook

pytestmark = pytest.mark.timeout(600)

PAIRS = [pytest.param(("1.6", "1.11"), id="1.6-to-1.11"), pytest.param(("1.11", "1.8"), id="1.11-to-1.8")]

SRC = "{{ fed.parties['9999'].flow_url }}"
DST = "{{ fed.parties['99'].flow_url }}"
MODEL = "{{ fed.model.model_id }}"
DEPLOYED = "{{ fed.model.deployed_version }}"
NEW_MODEL = "arbiter-100#guest-99#host-100#model"
OTHER_ROLES = {"guest": [99], "host": [101], "arbiter": [101]}


def migrate(name, **options):
    args = {"flow_url": SRC, "model_id": MODEL, "model_version": DEPLOYED, "role": "{{ fed.migration.role }}",
            "migrate_role": "{{ fed.migration.migrate_role }}"}
    args.update(options)
    return {"name": name, "fate.flow.model_migrate": args}


def failing(task):
    task["ignore_errors"] = True
    return task


def once(task):
    """Only on the first version pair (see the module docstring for why once is enough)."""
    task["when"] = "full"
    return task


def import_(name, archive="{{ std.parties[0].archive_path }}", role="guest", party_id=99, **options):
    args = {"flow_url": DST, "archive": archive, "role": role, "party_id": party_id}
    args.update(options)
    return {"name": name, "fate.flow.model_import": args}


PUBLISH = {"model_id": NEW_MODEL, "role": "{{ fed.migration.migrate_role }}"}

TASKS = [
    once(failing(migrate("Migrate a missing model version", model_version="20990101000000000000",
                         unify_model_version="mod_missing"))),
    failing(migrate("One party fails inside success", unify_model_version="mod_partial", federated_mode="SINGLE",
                    execute_party={"guest": [9999], "host": [10000]})),
    once(failing(migrate("Migrate with a party id that is not an integer", role={"guest": ["nine"], "host": [10000]},
                         migrate_role={"guest": [99], "host": [100]}))),
    failing({"name": "Deploy a missing model", "fate.flow.model_deploy": {
        "flow_url": SRC, "model_id": MODEL, "model_version": "20990101000000000000"}}),
    {"name": "Look up a missing model", "fate.flow.model_info": {
        "flow_url": SRC, "model_id": MODEL, "model_version": "20990101000000000000"}},
    dict(migrate("Migrate the guest", execute_party={"guest": [9999]}, unify_model_version="mod_dup",
                 fate_home="{{ fed.parties['9999'].fate_home }}"), register="std"),
    dict(migrate("Migrate the guest for other hosts", execute_party={"guest": [9999]}, unify_model_version="mod_dup",
                 migrate_role=OTHER_ROLES, fate_home="{{ fed.parties['9999'].fate_home }}"), register="other"),
    once(failing(import_("Import with a party id that is not an integer", party_id="abc"))),
    once(failing(import_("Import for a role the party does not have", role="host"))),
    once(failing(import_("Import for a party not in the model", party_id=12345))),
    once(failing(import_("Import a missing archive", archive="/nonexistent/guest#99#model_mod_dup.zip"))),
    dict(import_("Check mode: import"), check_mode=True),
    {"name": "Look up after the check-mode import", "fate.flow.model_info": {
        "flow_url": DST, "model_id": NEW_MODEL, "model_version": "mod_dup", "role": "guest", "party_id": 99}},
    import_("Import"),
    import_("Import the same archive again"),
    failing(import_("Import a different model under the same id and version",
                    archive="{{ other.parties[0].archive_path }}", model_id=NEW_MODEL, model_version="mod_dup")),
    failing(dict(import_("Check mode: replace it by force", archive="{{ other.parties[0].archive_path }}",
                         model_id=NEW_MODEL, model_version="mod_dup", force=True), check_mode=True)),
    failing(import_("Replace it by force", archive="{{ other.parties[0].archive_path }}", model_id=NEW_MODEL,
                    model_version="mod_dup", force=True)),
    once(failing({"name": "Bind before load", "fate.flow.model_bind": dict(
        PUBLISH, flow_url=DST, service_id="mod-unloaded", model_version="mod_dup")})),
    once(failing({"name": "Bind a service id with a slash", "fate.flow.model_bind": dict(
        PUBLISH, flow_url=DST, service_id="mod/slash", model_version="mod_dup")})),
    failing({"name": "Load a model that is not there", "fate.flow.model_load": dict(
        PUBLISH, flow_url=DST, model_version="mod_never")}),
    once(failing({"name": "Check mode: load a model that is not there", "check_mode": True,
                  "fate.flow.model_load": dict(PUBLISH, flow_url=DST, model_version="mod_never")})),
    {"name": "Check mode: load", "check_mode": True, "fate.flow.model_load": dict(
        PUBLISH, flow_url=DST, model_version="mod_dup")},
    {"name": "Check mode: bind", "check_mode": True, "fate.flow.model_bind": dict(
        PUBLISH, flow_url=DST, service_id="mod-check", model_version="mod_dup")},
    {"name": "Look up after the check-mode load", "fate.flow.model_info": {
        "flow_url": DST, "model_id": NEW_MODEL, "model_version": "mod_dup", "role": "guest", "party_id": 99}},
]


def failed(run, name):
    entry = run.task(name)
    assert entry["status"] == "failed", "%s: expected a failure, got %s" % (name, entry)
    return entry["result"]


def host_of(pair):
    return "fate_%s_to_%s" % tuple(v.replace(".", "_") for v in pair)


@pytest.fixture(scope="module")
def failures(sandbox, tmp_path_factory):
    """The playbook, once for both pairs (one local host per sandbox, run in parallel), at -vvv with signing keys.
    Returns ({host: fed}, secret, run)."""
    feds, hostvars = {}, {}
    for param in PAIRS:
        pair = param.values[0]
        fed = feds[host_of(pair)] = sandbox(source=pair[0], destination=pair[1])
        hostvars[host_of(pair)] = {"fed": fed, "full": pair == PAIRS[0].values[0]}
    secret = "S3cret-" + secrets.token_hex(12)
    playbook = [play(TASKS, name="failure paths", hosts="all", module_defaults={
        "group/fate.flow.fate_flow": {"app_key": "fate-flow-tests", "secret_key": secret, "timeout": 60,
                                      "retries": 0}})]
    run = run_playbook(tmp_path_factory.mktemp("failures"), playbook, inventory=local_hosts(hostvars), verbosity=3)
    return feds, secret, run


def test_secret_key_never_shown(failures):
    _feds, secret, run = failures
    assert run.rc == 0, run     # every failure is expected (ignore_errors)
    assert "secret_key" in run.output and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.output, \
        "-vvv shows the module arguments (masked)"
    assert secret not in run.output, "the secret key appears in the -vvv output"
    assert secret not in json.dumps(run.tasks), "the secret key appears in a task result"


@pytest.mark.parametrize("pair", PAIRS)
def test_failure_paths(failures, pair):
    feds, _secret, whole = failures
    fed = feds[host_of(pair)]
    run = whole.for_host(host_of(pair))
    full = pair == PAIRS[0].values[0]
    dst_is_19 = pair[1] == "1.11"
    model = fed["model"]

    # One party fails, the other succeeds; the task fails naming only the failed one.
    result = failed(run, "One party fails inside success")
    assert "failed on 1 of 2 parties - host 10000: Can not found %s %s model local cache" % (
        model["model_id"], model["deployed_version"]) in result["msg"], result["msg"]
    assert "guest 9999" not in result["msg"]
    assert result["party"] == {"role": "host", "party_id": 10000}
    assert {(p["role"], p["ok"]) for p in result["parties"]} == {("guest", True), ("host", False)}

    result = failed(run, "Deploy a missing model")
    assert result["reason"] == "not_found"
    assert "%s 20990101000000000000 is not known to FATE Flow" % model["model_id"] in result["msg"]
    assert "check model_id and model_version" in result["msg"]

    lookup = run.task("Look up a missing model")
    assert lookup["status"] == "ok" and lookup["result"]["exists"] is False and lookup["result"]["count"] == 0

    check = run.task("Check mode: import")
    assert check["status"] == "changed" and check["result"]["status"] == "would_import"
    assert run.result("Look up after the check-mode import")["exists"] is False, "check mode imported the model"
    imported = run.task("Import")
    assert imported["status"] == "changed" and imported["result"]["status"] == "imported", \
        "check mode imported the model"
    again = run.task("Import the same archive again")
    assert again["status"] == "ok" and again["result"]["status"] == "already_imported"
    assert again["result"]["compared_by"] == ("sha256" if dst_is_19 else "pipeline content (%s)" % ", ".join(
        ["fate_version", "train_dsl", "inference_dsl", "roles"]))

    result = failed(run, "Import a different model under the same id and version")
    assert "A different model is already imported as guest#99#%s mod_dup on %s" % (
        NEW_MODEL, fed["parties"]["99"]["flow_url"]) in result["msg"], result["msg"]
    assert result["reason"] == "conflict"
    if dst_is_19:
        assert "Set force=true to replace it." in result["msg"]
        check = run.task("Check mode: replace it by force")
        assert check["status"] == "changed" and check["result"]["status"] == "would_replace"
        forced = run.task("Replace it by force")
        assert forced["status"] == "changed" and forced["result"]["status"] == "replaced"
    else:
        assert "cannot replace a model: remove fateflow/model_local_cache/guest#99#%s/mod_dup" % NEW_MODEL \
            in result["msg"], result["msg"]
        for name in ("Check mode: replace it by force", "Replace it by force"):
            result = failed(run, name)
            assert "force_update needs FATE Flow 1.9+" in result["msg"] and result["reason"] == "unsupported"

    result = failed(run, "Load a model that is not there")
    for party in ("guest#99", "host#100"):
        assert "Model %s#%s mod_never not exists in model local cache" % (party, NEW_MODEL) in result["msg"]
    assert "failed on 2 of 2 parties - guest 99" in result["msg"] and result["reason"] == "party"

    for name, status in (("Check mode: load", "would_load"), ("Check mode: bind", "would_bind")):
        entry = run.task(name)
        assert entry["status"] == "changed" and entry["result"]["status"] == status, entry
    assert [m["loaded_times"] for m in run.result("Look up after the check-mode load")["models"]] == [0], \
        "check mode loaded the model"

    if not full:
        return
    # Checked before any FATE Flow is asked, or the same code path on every release: once is enough.
    # Every party fails: each one is named with FATE's message, and FATE's own "success" is kept.
    result = failed(run, "Migrate a missing model version")
    missing = "Can not found %s 20990101000000000000 model local cache" % model["model_id"]
    for party in ("guest 9999", "host 10000", "arbiter 10000"):
        assert "%s: %s" % (party, missing) in result["msg"], result["msg"]
    assert "failed on 3 of 3 parties" in result["msg"] and "check model_id and model_version" in result["msg"]
    assert (result["reason"], result["retcode"], result["retmsg"]) == ("party", 0, "success")

    result = failed(run, "Bind before load")
    assert result["retcode"] == 104 and "load the model first (fate.flow.model_load)" in result["msg"]
    assert "retcode 104" in result["msg"]

    msg = failed(run, "Import for a party not in the model")["msg"]
    assert "party 12345 is not a guest party of the model" in msg
    assert "import it with the role and party id the model was trained or migrated for" in msg

    assert failed(run, "Migrate with a party id that is not an integer")["msg"] == \
        "role.guest 'nine' is not an integer party id"
    assert failed(run, "Import with a party id that is not an integer")["msg"] == \
        "party_id 'abc' is not an integer party id"
    msg = failed(run, "Import for a role the party does not have")["msg"]
    assert "party 99 is not a host party of the model" in msg and '"host": [100]' in msg
    assert "does not exist on the host where the module runs" in failed(run, "Import a missing archive")["msg"]
    msg = failed(run, "Bind a service id with a slash")["msg"]
    assert "'mod/slash' contains /, which FATE-Serving refuses" in msg
    result = failed(run, "Check mode: load a model that is not there")
    assert result["reason"] == "not_found" and "Import it there first (fate.flow.model_import)" in result["msg"]
