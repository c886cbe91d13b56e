"""The real `flow` CLI (PyPI fate-client 1.11.3, 1.7.2, 1.5.3) against the sandbox federation.

Each test drives the CLI exactly as an operator following FATE's guides would, and asserts the
answers real FATE gives (../shared/fate-flow-contract.md, ../shared/flow-cli-wire.md).
"""
import json
import os
import re
import zipfile

import pytest
import requests

from fate_sandbox.flowcli import FlowCLI
from fate_sandbox.model_store import gen_model_id

ARCHIVE = re.compile(r"Model files can be found at '([^']+)'")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cli_factory(tmp_path_factory):
    made = {}

    def make(version):
        if version not in made:
            made[version] = FlowCLI(version, str(tmp_path_factory.mktemp("cli-%s" % version)))
        return made[version]
    return make


def write(cli, name, data):
    with open(os.path.join(cli.workdir, name), "w") as f:
        json.dump(data, f)
    return name


def migrate_conf(fed, unify, mode="MULTIPLE", execute=None, role=None, migrate_role=None):
    mig = fed["migration"]
    return {"job_parameters": {"federated_mode": mode},
            "migrate_initiator": {"role": "guest", "party_id": mig["migrate_role"]["guest"][0]},
            "role": role or mig["role"], "migrate_role": migrate_role or mig["migrate_role"],
            "execute_party": execute or mig["role"], "model_id": fed["model"]["model_id"],
            "model_version": fed["model"]["deployed_version"], "unify_model_version": unify}


def new_model_id(fed):
    return gen_model_id(fed["migration"]["migrate_role"])


def party(fed, pid):
    return fed["parties"][str(pid)]


def do_migrate(cli, fed, unify):
    src = party(fed, fed["migration"]["role"]["guest"][0])
    code, answer, out = cli.run(src["flow_url"], ["model", "migrate", "-c", write(cli, "migrate.json",
                                                                                   migrate_conf(fed, unify))])
    assert code == 0, out
    assert answer["retcode"] == 0 and answer["retmsg"] == "success", out
    return answer


def archives_of(answer, fed):
    """{(role, new party id): archive path} from the per-party retmsgs."""
    mig = fed["migration"]
    found = {}
    for role, by_party in answer["data"]["detail"].items():
        for old_pid, result in by_party.items():
            assert result["retcode"] == 0, result
            index = [str(p) for p in mig["role"][role]].index(old_pid)
            found[(role, str(mig["migrate_role"][role][index]))] = ARCHIVE.search(result["retmsg"]).group(1)
    return found


def import_all(cli, fed, archives, unify):
    for (role, pid), path in archives.items():
        conf = {"role": role, "party_id": int(pid), "model_id": new_model_id(fed), "model_version": unify,
                "file": path}
        code, answer, out = cli.run(party(fed, pid)["flow_url"], ["model", "import", "-c",
                                                                  write(cli, "import.json", conf)])
        assert code == 0 and answer["retcode"] == 0, out


def publish_conf(fed, unify, service_id=None):
    roles = {r: [str(p) for p in ids] for r, ids in fed["migration"]["migrate_role"].items()}
    guest = str(fed["migration"]["migrate_role"]["guest"][0])
    conf = {"initiator": {"party_id": guest, "role": "guest"}, "role": roles,
            "job_parameters": {"work_mode": 1, "model_id": new_model_id(fed), "model_version": unify}}
    if service_id:
        conf["service_id"] = service_id
    return conf


def infer(fed, pid, service_id):
    url = party(fed, pid)["serving"]["inference_url"]
    return requests.post(url, timeout=30, json={
        "head": {"serviceId": service_id},
        "body": {"featureData": {"x0": 0.3, "x1": -0.2, "x2": 0.7, "x3": 0.05},
                 "sendToRemoteFeatureData": {"device_id": "cli-test"}}}).json()


@pytest.mark.parametrize("cli_version,versions,registry", [
    ("1.11.3", ("1.6", "1.11"), False),
    ("1.7.2", ("1.11", "1.8"), False),
    ("1.5.3", ("1.6", "1.11"), False),
    ("1.11.3", ("1.6", "1.11"), True),
], ids=["cli-1.11.3", "cli-1.7.2", "cli-1.5.3", "cli-1.11.3-zookeeper-registry"])
def test_guide_procedure_end_to_end(sandbox, cli_factory, cli_version, versions, registry):
    """migrate -> archives really there -> import -> get-model-info -> export -> load -> bind -> inference.

    With the registry on, every Flow finds its servings in ZooKeeper and every serving finds the
    model's transfer URL there (digest ACL).
    """
    fed = sandbox(source=versions[0], destination=versions[1], registry=registry)
    assert fed["zookeeper"]["enabled"] is registry
    cli = cli_factory(cli_version)
    unify = "cli_%s%s" % (cli_version.replace(".", "_"), "_zk" if registry else "")
    answer = do_migrate(cli, fed, unify)
    for role, ids in fed["migration"]["role"].items():
        for pid in ids:
            assert answer["data"][role][str(pid)] == 0
    archives = archives_of(answer, fed)
    assert set(archives) == {("guest", "99"), ("host", "100"), ("arbiter", "100")}
    for (role, pid), path in archives.items():
        assert os.path.basename(path) == "%s#%s#%s_%s.zip" % (role, pid, new_model_id(fed), unify)
        old_pid = fed["migration"]["role"][role][0]
        assert path.startswith(party(fed, old_pid)["temp_dir"]), "archive written on the executing party"
        with zipfile.ZipFile(path) as zf:
            assert "variables/data/pipeline/pipeline/Pipeline" in zf.namelist()
            assert "define/define_meta.yaml" in zf.namelist()

    import_all(cli, fed, archives, unify)
    dst = party(fed, 99)
    code, info, out = cli.run(dst["flow_url"], ["model", "get-model-info", "--model-id", new_model_id(fed),
                                                "--model-version", unify, "-r", "guest", "-p", "99"])
    assert info["retcode"] == 0, out
    assert {(row["f_role"], str(row["f_party_id"])) for row in info["data"]} == {("guest", "99")}

    exported = write(cli, "export.json", {"role": "guest", "party_id": 99, "model_id": new_model_id(fed),
                                          "model_version": unify, "output_path": "exported"})
    code, answer, out = cli.run(dst["flow_url"], ["model", "export", "-c", exported])
    assert code == 0 and answer["retcode"] == 0, out
    assert zipfile.ZipFile(answer["file"]).testzip() is None

    code, answer, out = cli.run(dst["flow_url"], ["model", "load", "-c",
                                                  write(cli, "load.json", publish_conf(fed, unify))])
    assert answer["retcode"] == 0, out
    assert answer["data"]["guest"]["99"] == 0 and answer["data"]["host"]["100"] == 0
    assert "arbiter" not in answer["data"]
    service_id = "svc-%s" % unify
    code, answer, out = cli.run(dst["flow_url"], ["model", "bind", "-c",
                                                  write(cli, "bind.json", publish_conf(fed, unify, service_id))])
    assert answer == {"retcode": 0, "retmsg": "service id is %s" % service_id}, out
    result = infer(fed, 99, service_id)
    assert result["retcode"] == 0, result
    assert 0.0 < result["data"]["score"] < 1.0
    assert result["data"]["modelVersion"] == unify
    if registry:
        assert_registered(fed, dst, unify)


def assert_registered(fed, dst, unify):
    """The servings and the Flows' per-model transfer URLs are in ZooKeeper, behind the digest ACL."""
    from urllib.parse import unquote
    from kazoo.client import KazooClient
    zk = fed["zookeeper"]
    client = KazooClient(hosts=",".join(zk["hosts"]), auth_data=[("digest", "%s:%s" % (zk["user"], zk["password"]))])
    client.start(timeout=10)
    try:
        servings = [unquote(c) for c in client.get_children("/FATE-SERVICES/serving/online/publishLoad/providers")]
        assert any(dst["serving"]["grpc_address"] in c for c in servings), servings
        transfers = [unquote(c) for c in client.get_children("/FATE-SERVICES/flow/online/transfer/providers")]
        wanted = "/v1/model/transfer/guest~99~%s/%s" % (new_model_id(fed).replace("#", "~"), unify)
        assert any(c.endswith(wanted) for c in transfers), transfers
    finally:
        client.stop()


def test_duplicate_import_on_1_11_is_409(sandbox, cli_factory):
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    unify = "dup_1_11"
    archives = archives_of(do_migrate(cli, fed, unify), fed)
    import_all(cli, fed, {("guest", "99"): archives[("guest", "99")]}, unify)
    conf = {"role": "guest", "party_id": 99, "model_id": new_model_id(fed), "model_version": unify,
            "file": archives[("guest", "99")]}
    code, answer, out = cli.run(party(fed, 99)["flow_url"], ["model", "import", "-c", write(cli, "dup.json", conf)])
    assert answer == {"retcode": 409, "retmsg": "Model already exists."}, out
    conf["force_update"] = True
    code, answer, out = cli.run(party(fed, 99)["flow_url"], ["model", "import", "-c", write(cli, "force.json", conf)])
    assert answer["retcode"] == 0, out


def test_duplicate_import_before_1_9_is_retcode_100(sandbox, cli_factory):
    fed = sandbox(source="1.11", destination="1.8")
    cli = cli_factory("1.7.2")
    unify = "dup_1_8"
    archives = archives_of(do_migrate(cli, fed, unify), fed)
    one = {("guest", "99"): archives[("guest", "99")]}
    import_all(cli, fed, one, unify)
    conf = {"role": "guest", "party_id": 99, "model_id": new_model_id(fed), "model_version": unify,
            "file": archives[("guest", "99")]}
    code, answer, out = cli.run(party(fed, 99)["flow_url"], ["model", "import", "-c", write(cli, "dup.json", conf)])
    assert answer["retcode"] == 100, out
    assert answer["retmsg"] == "Model guest#99#%s %s local cache already existed" % (new_model_id(fed), unify)


def test_1_11_keeps_the_migrated_model_on_the_source(sandbox, cli_factory):
    """1.9+ registers the migrated model where it was migrated; ≤1.8 deletes it (contract §3.4)."""
    fed = sandbox(source="1.11", destination="1.8")
    cli = cli_factory("1.11.3")
    unify = "kept_1_11"
    do_migrate(cli, fed, unify)
    src = party(fed, 9999)
    kept = os.path.join(src["model_local_cache"], "guest#99#%s" % new_model_id(fed), unify)
    assert os.path.isdir(kept)
    code, answer, out = cli.run(src["flow_url"], ["model", "migrate", "-c", write(cli, "again.json",
                                                                                  migrate_conf(fed, unify))])
    assert answer["retcode"] == 0, "a failed party still gives top-level success"
    detail = answer["data"]["detail"]["guest"]["9999"]
    assert detail["retcode"] == 100
    assert "Unify model version %s has been occupied in database" % unify in detail["retmsg"]


def test_identical_role_maps_need_no_migration(sandbox, cli_factory):
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    same = fed["migration"]["role"]
    conf = migrate_conf(fed, "same_roles", migrate_role=same)
    code, answer, out = cli.run(party(fed, 9999)["flow_url"], ["model", "migrate", "-c",
                                                               write(cli, "same.json", conf)])
    assert answer == {"retcode": 100, "retmsg": "The config of previous roles is the same with that of migrate "
                                                "roles. There is no need to migrate model. Migration process "
                                                "aborting."}, out


def test_failed_party_inside_success(sandbox, cli_factory):
    """A party whose model is missing fails inside a top-level retcode 0 'success'."""
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    conf = migrate_conf(fed, "missing_model")
    conf["model_version"] = "20990101000000000000"
    code, answer, out = cli.run(party(fed, 9999)["flow_url"], ["model", "migrate", "-c",
                                                               write(cli, "missing.json", conf)])
    assert answer["retcode"] == 0 and answer["retmsg"] == "success", out
    assert answer["data"]["guest"]["9999"] == 100
    assert answer["data"]["detail"]["guest"]["9999"]["retmsg"] == \
        "Can not found %s 20990101000000000000 model local cache" % fed["model"]["model_id"]


def test_bind_before_load_fails_with_serving_104(sandbox, cli_factory):
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    unify = "bind_first"
    import_all(cli, fed, archives_of(do_migrate(cli, fed, unify), fed), unify)
    code, answer, out = cli.run(party(fed, 99)["flow_url"], ["model", "bind", "-c", write(
        cli, "bind.json", publish_conf(fed, unify, "svc-bind-first"))])
    assert answer["retcode"] == 104, out
    assert answer["retmsg"] == "model %s_guest#99#%s is not exist " % (unify, new_model_id(fed))


def test_deploy_then_load_the_child(sandbox, cli_factory):
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    src = party(fed, 9999)
    code, answer, out = cli.run(src["flow_url"], ["model", "deploy", "--model-id", fed["model"]["model_id"],
                                                  "--model-version", fed["model"]["trained_version"]])
    assert answer["retcode"] == 0, out
    child = answer["data"]["model_version"]
    assert child != fed["model"]["trained_version"]
    assert answer["data"]["guest"]["9999"] == 0 and answer["data"]["host"]["10000"] == 0
    code, info, out = cli.run(src["flow_url"], ["model", "get-model-info", "--model-id", fed["model"]["model_id"],
                                                "--model-version", child, "-r", "guest", "-p", "9999", "--detail"])
    assert info["data"][0]["f_parent"] is False, out
    assert info["data"][0]["f_parent_info"]["parent_model_version"] == fed["model"]["trained_version"]


def test_loading_an_undeployed_model_is_refused(sandbox, cli_factory):
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    roles = {r: [str(p) for p in ids] for r, ids in fed["model"]["roles"].items()}
    conf = {"initiator": {"party_id": "9999", "role": "guest"}, "role": roles,
            "job_parameters": {"work_mode": 1, "model_id": fed["model"]["model_id"],
                               "model_version": fed["model"]["trained_version"]}}
    code, answer, out = cli.run(party(fed, 9999)["flow_url"], ["model", "load", "-c", write(cli, "l.json", conf)])
    assert answer["retcode"] == 101 and answer["retmsg"] == "failed", out
    assert answer["data"]["detail"]["guest"]["9999"]["retmsg"] == (
        "Only deployed models could be used to execute process of loading. Please deploy model before loading.")


@pytest.mark.parametrize("cli_version", ["1.11.3", "1.7.2"])
def test_server_versions(sandbox, cli_factory, cli_version):
    fed = sandbox(source="1.11", destination="1.8")
    cli = cli_factory(cli_version)
    for pid, fate, flow in (("9999", "1.11.4", "1.11.2"), ("99", "1.8.0", "1.8.0")):
        code, answer, out = cli.run(party(fed, pid)["flow_url"], ["server", "versions"])
        assert answer["retcode"] == 0, out
        assert answer["data"]["FATE"] == fate and answer["data"]["FATEFlow"] == flow and answer["data"]["API"] == "v1"


def test_1_4_has_no_migrate_but_loads_and_binds(sandbox, cli_factory):
    fed = sandbox(source="1.4", destination="1.6")
    src = party(fed, 9999)
    assert os.path.exists(os.path.join(src["fate_home"], "arch", "conf", "server_conf.json"))
    cli = cli_factory("1.5.3")
    # 1.4 has no /migrate route: the path falls to the catch-all /<model_operation> (import/export).
    code, answer, out = cli.run(src["flow_url"], ["model", "migrate", "-c",
                                                  write(cli, "m.json", migrate_conf(fed, "on_1_4"))])
    assert answer == {"retcode": 100, "retmsg": "Can not support this operating now: migrate"}, out
    roles = {r: [str(p) for p in ids] for r, ids in fed["model"]["roles"].items()}
    conf = {"initiator": {"party_id": "9999", "role": "guest"}, "role": roles,
            "job_parameters": {"work_mode": 1, "model_id": fed["model"]["model_id"],
                               "model_version": fed["model"]["deployed_version"]}}
    code, answer, out = cli.run(src["flow_url"], ["model", "load", "-c", write(cli, "l.json", conf)])
    assert answer["retcode"] == 0, out
    code, answer, out = cli.run(src["flow_url"], ["model", "bind", "-c",
                                                  write(cli, "b.json", dict(conf, service_id="svc-1-4"))])
    assert answer == {"retcode": 0, "retmsg": "service id is svc-1-4"}, out
    assert infer(fed, 9999, "svc-1-4")["retcode"] == 0


def test_int_party_ids_break_load_on_1_6(sandbox, cli_factory):
    """1.5-1.7.0 write role party ids straight into serving's string fields: ints fail (contract §2.5)."""
    fed = sandbox(source="1.6", destination="1.11")
    cli = cli_factory("1.11.3")
    conf = {"initiator": {"party_id": 9999, "role": "guest"}, "role": fed["model"]["roles"],
            "job_parameters": {"work_mode": 1, "model_id": fed["model"]["model_id"],
                               "model_version": fed["model"]["deployed_version"]}}
    code, answer, out = cli.run(party(fed, 9999)["flow_url"], ["model", "load", "-c", write(cli, "i.json", conf)])
    assert answer["retcode"] == 101, out
    assert answer["data"]["detail"]["guest"]["9999"]["retcode"] == 100


def _set_app_key(path, app_key, secret_key):
    with open(path) as f:
        text = f.read()
    new = re.sub(r"(?m)^(  http_app_key:).*$", lambda m: m.group(1) + (" " + app_key if app_key else ""), text)
    new = re.sub(r"(?m)^(  http_secret_key:).*$", lambda m: m.group(1) + (" " + secret_key if secret_key else ""), new)
    assert new != text or not app_key, "http_app_key/http_secret_key not found in %s" % path
    with open(path, "w") as f:
        f.write(new)


def _restart_flow(fed, party_id):
    import subprocess
    import time
    p = party(fed, party_id)
    result = subprocess.run([fed["supervisorctl"], "-c", p["supervisor"]["config"], "restart",
                             p["supervisor"]["flow_program"]], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for _ in range(100):
        try:
            requests.post(p["flow_url"] + "/v1/server/version/get", json={}, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("flow %s did not come back" % party_id)


def test_request_signing_on_1_8(sandbox, cli_factory):
    """With http_app_key/http_secret_key set (1.7+), unsigned requests are refused and the real CLI's
    HMAC signatures (JSON and multipart import) are accepted."""
    fed = sandbox(source="1.11", destination="1.8")
    cli = cli_factory("1.11.3")
    dst = party(fed, 99)
    conf_path = dst["config_files"][0]
    with open(conf_path) as f:
        original = f.read()
    unify = "signed_1_8"
    archive = archives_of(do_migrate(cli, fed, unify), fed)[("guest", "99")]
    try:
        _set_app_key(conf_path, "sandbox-app", "sandbox-secret-key")
        _restart_flow(fed, 99)
        unsigned = requests.post(dst["flow_url"] + "/v1/server/version/get", json={}, timeout=10)
        assert unsigned.status_code == 401
        code, answer, out = cli.run(dst["flow_url"], ["server", "versions"], app_key="sandbox-app",
                                    secret_key="wrong-secret")
        assert answer["retcode"] == 403, out
        code, answer, out = cli.run(dst["flow_url"], ["server", "versions"], app_key="sandbox-app",
                                    secret_key="sandbox-secret-key")
        assert answer["retcode"] == 0 and answer["data"]["FATE"] == "1.8.0", out
        conf = {"role": "guest", "party_id": 99, "model_id": new_model_id(fed), "model_version": unify,
                "file": archive}
        code, answer, out = cli.run(dst["flow_url"], ["model", "import", "-c", write(cli, "signed.json", conf)],
                                    app_key="sandbox-app", secret_key="sandbox-secret-key")
        assert answer == {"retcode": 0, "retmsg": "success"}, out
    finally:
        with open(conf_path, "w") as f:
            f.write(original)
        _restart_flow(fed, 99)
