"""Wire-level behaviours of the FATE Flow emulator that the real CLI cannot show (contract §1, §2, §11)."""
import json
import os
import zipfile

import pytest
import requests

pytestmark = pytest.mark.timeout(300)

GUIDE_MODEL = "arbiter-10000#guest-9999#host-10000#model"


def post(party, path, body=None, raw=None, headers=None):
    kwargs = {"timeout": 30, "headers": headers or {}}
    if raw is not None:
        kwargs["data"] = raw
    elif body is not None:
        kwargs["json"] = body
    return requests.post(party["flow_url"] + path, **kwargs)


@pytest.fixture(scope="module")
def fed(sandbox):
    return sandbox(source="1.6", destination="1.11")


@pytest.fixture(scope="module")
def fed18(sandbox):
    return sandbox(source="1.11", destination="1.8")


def test_envelope_is_flask_jsonify(fed):
    reply = post(fed["parties"]["99"], "/v1/server/version/get", {})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.text.endswith("}\n") and ", " not in reply.text
    assert list(json.loads(reply.text)) == sorted(json.loads(reply.text)), "jsonify sorts keys"
    assert reply.headers["Server"].startswith("Werkzeug/2.0")


def test_unknown_path_per_version(fed):
    old = post(fed["parties"]["9999"], "/v1/model/nothing/here", {})
    assert old.status_code == 404 and old.headers["Content-Type"].startswith("text/html")
    new = post(fed["parties"]["99"], "/v1/model/nothing/here", {})
    assert new.status_code == 200
    assert new.json() == {"retcode": 100, "retmsg": "<NotFound '404: Not Found'>"}
    wrong_method = requests.get(fed["parties"]["99"]["flow_url"] + "/v1/model/load/do", timeout=10)
    assert wrong_method.json() == {"retcode": 100, "retmsg": "<MethodNotAllowed '405: Method Not Allowed'>"}
    # GET /v1/model/load falls through to the catch-all /<model_operation> route, as in Flask.
    caught = requests.get(fed["parties"]["99"]["flow_url"] + "/v1/model/load", timeout=10).json()
    assert caught == {"retcode": 100, "retmsg": "Exception('Can not support this operating now: load')"}


def test_version_get_removed_in_1_10(fed):
    assert post(fed["parties"]["99"], "/v1/version/get", {"module": "FATE"}).json()["retcode"] == 100
    old = post(fed["parties"]["9999"], "/v1/version/get", {"module": "FATE"}).json()
    assert old == {"data": {"FATE": "1.6.1"}, "retcode": 0, "retmsg": "success"}
    assert post(fed["parties"]["9999"], "/v1/server/version/get", {}).status_code == 404


def test_missing_arguments_101_from_1_7_and_100_before(fed, fed18):
    new = post(fed18["parties"]["99"], "/v1/model/migrate", {"role": {}}).json()
    assert new["retcode"] == 101 and new["retmsg"].startswith("required argument are missing: migrate_initiator,")
    old = post(fed["parties"]["9999"], "/v1/model/migrate", {"role": {}}).json()
    assert old == {"retcode": 100, "retmsg": "'migrate_initiator'"}


def _migrate_body(fed, unify, execute=None, mode="MULTIPLE"):
    mig = fed["migration"]
    return {"job_parameters": {"federated_mode": mode}, "migrate_initiator": {"role": "guest", "party_id": 99},
            "role": mig["role"], "migrate_role": mig["migrate_role"], "execute_party": execute or mig["role"],
            "model_id": GUIDE_MODEL, "model_version": fed["model"]["deployed_version"], "unify_model_version": unify}


def test_string_execute_party_ids_fail_that_party(fed):
    body = _migrate_body(fed, "str_ids", execute={"guest": ["9999"]})
    answer = post(fed["parties"]["9999"], "/v1/model/migrate", body).json()
    assert answer["retcode"] == 0
    assert answer["data"]["guest"]["9999"] == 100
    assert "'NoneType' object is not subscriptable" in answer["data"]["detail"]["guest"]["9999"]["retmsg"]


def test_transport_failure_is_101_without_detail(fed, tmp_path):
    """A party that cannot be reached: overall 101 'failed', data 100, no detail entry (contract §2.1)."""
    body = _migrate_body(fed, "unreachable")
    body["role"] = {"guest": [9999], "host": [10000, 424242], "arbiter": [10000]}
    body["migrate_role"] = {"guest": [99], "host": [100, 101], "arbiter": [100]}
    body["execute_party"] = {"host": [424242]}
    answer = post(fed["parties"]["9999"], "/v1/model/migrate", body).json()
    assert answer["retcode"] == 101 and answer["retmsg"] == "failed"
    assert answer["data"]["host"]["424242"] == 100
    assert "host" not in answer["data"]["detail"]


def test_single_mode_runs_on_the_receiving_flow(fed):
    body = _migrate_body(fed, "single_mode", execute={"host": [10000], "arbiter": [10000]}, mode="SINGLE")
    answer = post(fed["parties"]["10000"], "/v1/model/migrate", body).json()
    assert answer["data"]["host"]["10000"] == 0 and answer["data"]["arbiter"]["10000"] == 0
    path = answer["data"]["detail"]["host"]["10000"]["retmsg"].split("found at '")[1].rstrip("'.")
    assert path.startswith(fed["parties"]["10000"]["temp_dir"])
    assert open(path + ".sha1").read() == __import__("hashlib").sha1(open(path, "rb").read()).hexdigest()


def test_migrate_archive_rewrites_roles_and_ids(fed18):
    answer = post(fed18["parties"]["9999"], "/v1/model/migrate", _migrate_body(fed18, "rewrite_check")).json()
    retmsg = answer["data"]["detail"]["guest"]["9999"]["retmsg"]
    assert "New model id is: arbiter-100#guest-99#host-100#model," in retmsg, "1.9+ shows the plain model id"
    path = retmsg.split("found at '")[1].rstrip("'.")
    assert not os.path.exists(path + ".sha1"), "1.9+ writes no .sha1"
    with zipfile.ZipFile(path) as zf:
        info = json.loads(zf.read("import_model.json"))
        assert info["party_id"] == 99 and info["model_id"] == "arbiter-100#guest-99#host-100#model"


def test_export_of_missing_model(fed):
    body = {"role": "guest", "party_id": 99, "model_id": "nope#model", "model_version": "1"}
    old = requests.get(fed["parties"]["9999"]["flow_url"] + "/v1/model/export", json=body, timeout=10)
    assert old.status_code == 210 and old.json()["retmsg"] == "Model guest#99#nope#model 1 is not exist."
    new = requests.get(fed["parties"]["99"]["flow_url"] + "/v1/model/export", json=body, timeout=10)
    assert new.status_code == 404 and new.json() == {"retmsg": "Model guest#99#nope#model 1 does not exist.",
                                                     "retcode": 404}


def test_transfer_endpoints(fed):
    src = fed["parties"]["9999"]
    namespace = "guest#9999#" + GUIDE_MODEL
    answer = post(src, "/v1/model/transfer", {"name": fed["model"]["deployed_version"], "namespace": namespace})
    data = answer.json()["data"]
    assert "pipeline.pipeline:Pipeline" in data and "hetero_lr_0.model:HeteroLogisticRegressionParam" in data
    by_path = post(src, "/v1/model/transfer/%s/%s" % (namespace.replace("#", "~"), fed["model"]["deployed_version"]))
    assert by_path.json()["data"] == data
    assert post(src, "/v1/model/transfer", {"name": "x"}).status_code == 400
    assert post(src, "/v1/model/transfer", {"name": "x", "namespace": "y"}).status_code == 404


def test_query_without_version_on_1_6(fed):
    answer = post(fed["parties"]["9999"], "/v1/model/query", {"model_id": GUIDE_MODEL}).json()
    assert answer == {"retcode": 100, "retmsg": "query_model_info() missing 1 required positional argument: "
                                                "'model_version'"}
    found = post(fed["parties"]["9999"], "/v1/model/query",
                 {"model_id": GUIDE_MODEL, "model_version": fed["model"]["deployed_version"]})
    assert list(json.loads(found.text)) == ["retcode", "retmsg", "data"], "built by hand, not sorted"


def test_non_json_content_type_before_1_9(fed):
    reply = post(fed["parties"]["9999"], "/v1/model/load", raw=b'{"job_id": "1"}',
                 headers={"Content-Type": "text/plain"}).json()
    assert reply["retcode"] == 100
    reply = post(fed["parties"]["99"], "/v1/model/load", raw=b'{"job_id": "1"}',
                 headers={"Content-Type": "text/plain"}).json()
    assert reply["retcode"] == 101 and reply["retmsg"].startswith("Model with version 1 can not be found")
