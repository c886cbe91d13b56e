"""Tests of the FATE-Serving emulator (sandbox/fate_sandbox/serving), run as real subprocesses.

A guest (9999) and a host (10000) emulator are started on free loopback ports; a small in-test HTTP
server plays FATE Flow's /v1/model/transfer over models written by model_store.seed_guide_model.
The ZooKeeper tests start a real ZooKeeper 3.8 from Debian's jars (skipped if Java or the jar is absent).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX = os.path.join(ROOT, "sandbox")
if SANDBOX not in sys.path:
    sys.path.insert(0, SANDBOX)

from fate_sandbox import model_store, profiles  # noqa: E402
from fate_sandbox.protos import model_service_pb2 as ms, model_service_pb2_grpc as ms_grpc, pipeline_pb2  # noqa: E402
from fate_sandbox.serving import codes  # noqa: E402
from fate_sandbox.serving.proxy import derived_features  # noqa: E402

pytestmark = pytest.mark.timeout(60)

IP = "127.0.0.1"
GUEST, HOST = "9999", "10000"
MODEL_ID = model_store.GUIDE_MODEL_ID
VERSION = model_store.DEPLOYED_VERSION
ROLES = {"guest": [GUEST], "host": [HOST], "arbiter": [HOST]}
PROFILE = profiles.get("1.6")
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_USER, ZK_PASSWORD = "fate", "s3cret-Zk-pw"


def free_port():
    with socket.socket() as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


def pmid(role, pid):
    return model_store.party_model_id(role, pid, MODEL_ID)


# -- fake FATE Flow transfer endpoint ------------------------------------------------------------------
class _TransferHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urllib.parse.unquote(self.path)
        if path.startswith("/v1/model/transfer/"):
            namespace, name = path[len("/v1/model/transfer/"):].split("/")
            namespace = namespace.replace("~", "#")
        else:
            req = json.loads(raw or b"{}")
            name, namespace = req.get("name"), req.get("namespace")
        self.server.requests.append((self.path, name, namespace))
        model_dir = os.path.join(self.server.home, PROFILE.model_local_cache, namespace or "-", name or "-")
        if not (name and namespace and model_store.exists(model_dir)):
            status, doc = 404, {"retcode": 404, "retmsg": "model not found"}
        else:
            files = model_store.component_files(model_dir)
            status, doc = 200, {"retcode": 0, "retmsg": "success",
                                "data": {k: base64.b64encode(v).decode() for k, v in files.items()}}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("fate"))
    for role, pid in (("guest", GUEST), ("host", HOST)):
        model_store.seed_guide_model(home, PROFILE, role, int(pid))
    server = ThreadingHTTPServer((IP, 0), _TransferHandler)
    server.daemon_threads = True
    server.home, server.requests = home, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    server.url = "http://%s:%d/v1/model/transfer" % (IP, server.server_address[1])
    yield server
    server.shutdown()
    server.server_close()


def lr_param(home, role, pid, version=VERSION):
    path = model_store.model_dir(home, PROFILE, role, pid, MODEL_ID, version)
    param = pipeline_pb2.LRModelParam()
    with open(os.path.join(path, "variables/data/hetero_lr_0/model/HeteroLogisticRegressionParam"), "rb") as f:
        param.ParseFromString(f.read())
    return param


# -- emulator processes ---------------------------------------------------------------------------------
class Serving:
    def __init__(self, home, party_id, **props):
        self.home, self.party_id = str(home), party_id
        self.port, self.proxy_port = free_port(), free_port()
        self.props = dict({"party.id": party_id, "ip": IP, "port": self.port, "proxy.port": self.proxy_port,
                           "zk.url": "", "useRegister": "true", "acl.enable": "false"}, **props)
        self.routes = {}
        self.proc = None
        self._channel = None

    @property
    def url(self):
        return "http://%s:%d" % (IP, self.proxy_port)

    @property
    def log(self):
        try:
            with open(os.path.join(self.home, "logs", "serving.log"), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def write_config(self):
        os.makedirs(os.path.join(self.home, "conf"), exist_ok=True)
        with open(os.path.join(self.home, "conf", "serving-server.properties"), "w") as f:
            f.write("# written by test_serving.py\n")
            for key, value in self.props.items():
                f.write("%s=%s\n" % (key, value))
        with open(os.path.join(self.home, "conf", "route_table.json"), "w") as f:
            json.dump({"route_table": {pid: {"default": [{"ip": IP, "port": port}]}
                                       for pid, port in self.routes.items()}}, f)

    def spawn(self):
        self.write_config()
        env = dict(os.environ, PYTHONPATH=SANDBOX)
        self.proc = subprocess.Popen([sys.executable, "-m", "fate_sandbox.serving", "--home", self.home],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def start(self, timeout=20):
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("serving exited %s: %s\n%s" % (self.proc.returncode,
                                                                    self.proc.stderr.read().decode(), self.log))
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("serving did not become healthy:\n" + self.log)

    def stop(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            # leaving ZooKeeper and the gRPC grace period take seconds on a loaded machine
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise
        finally:
            self.proc.stderr.close()

    @property
    def stub(self):
        if self._channel is None:
            self._channel = grpc.insecure_channel("%s:%d" % (IP, self.port))
        return ms_grpc.ModelServiceStub(self._channel)

    def load(self, role, file_path, version=VERSION, load_type="FATEFLOW"):
        pid = GUEST if role == "guest" else HOST
        return self.stub.publishLoad(load_request(role, pid, version, file_path, load_type), timeout=15)

    def bind(self, service_id, version=VERSION):
        return self.stub.publishBind(bind_request(service_id, version), timeout=15)

    def infer(self, service_id, features=None, send=None, call="inference", body=None):
        doc = {"head": {"serviceId": service_id},
               "body": body if body is not None else {"featureData": features or {},
                                                      "sendToRemoteFeatureData": send or {}}}
        response = requests.post("%s/federation/v1/%s" % (self.url, call), json=doc, timeout=10)
        assert response.status_code == 200
        return response.json()


def load_request(role, pid, version, file_path, load_type="FATEFLOW"):
    """PublishRequest as FATE Flow's /model/load/do sends it."""
    req = ms.PublishRequest(local=ms.LocalInfo(role=role, partyId=pid), loadType=load_type, filePath=file_path)
    for r, pids in ROLES.items():
        req.role[r].partyId.extend(pids)
        for p in pids:
            req.model[r].roleModelInfo[p].tableName = version
            req.model[r].roleModelInfo[p].namespace = pmid(r, p)
    return req


def bind_request(service_id, version):
    """PublishRequest as FATE Flow's /model/bind sends it (initiator's model only)."""
    req = ms.PublishRequest(local=ms.LocalInfo(role="guest", partyId=GUEST), serviceId=service_id)
    for r, pids in ROLES.items():
        req.role[r].partyId.extend(pids)
    req.model["guest"].roleModelInfo[GUEST].tableName = version
    req.model["guest"].roleModelInfo[GUEST].namespace = pmid("guest", GUEST)
    return req


@pytest.fixture(scope="module")
def pair(tmp_path_factory, transfer):
    guest = Serving(tmp_path_factory.mktemp("guest-serving"), GUEST)
    host = Serving(tmp_path_factory.mktemp("host-serving"), HOST)
    guest.routes[HOST] = host.proxy_port
    host.routes[GUEST] = guest.proxy_port
    try:
        host.start()
        guest.start()
        yield guest, host
    finally:
        rcs = (guest.stop(), host.stop())
    assert rcs == (0, 0), "SIGTERM must give a clean exit"
    assert "stopped" in guest.log


def expected_score(home, features, send):
    g, h = lr_param(home, "guest", int(GUEST)), lr_param(home, "host", int(HOST))
    host_values = derived_features(send, list(h.header))
    return model_store.sigmoid(model_store.lr_score(dict(g.weight), g.intercept, features)
                               + model_store.lr_score(dict(h.weight), h.intercept, host_values))


# -- tests ---------------------------------------------------------------------------------------------
def test_load_bind_inference(pair, transfer):
    guest, host = pair
    for server, role in ((host, "host"), (guest, "guest")):
        reply = server.load(role, transfer.url)
        assert (reply.statusCode, reply.message, reply.error) == (0, "", "")
        assert json.loads(reply.data) == {}
    reply = guest.bind("lr-guide")
    assert (reply.statusCode, reply.message) == (0, "")

    features = {"x0": 1.88669, "x1": -1.359293, "x2": 2.303601, "x3": 2.00137}
    send = {"device_id": "8"}
    before = int(time.time() * 1000)
    result = guest.infer("lr-guide", features, send)
    assert result["retcode"] == 0 and result["retmsg"] == "" and result["flag"] == 0
    data = result["data"]
    assert 0.0 < data["score"] < 1.0
    assert data["score"] == pytest.approx(expected_score(transfer.home, features, send), rel=1e-12)
    assert data["modelId"] == pmid("guest", GUEST) and data["modelVersion"] == VERSION
    assert isinstance(data["timestamp"], int) and data["timestamp"] <= before
    # Another id gives another host contribution; the same id gives the same score.
    other = guest.infer("lr-guide", features, {"device_id": "9"})["data"]["score"]
    assert other != data["score"]
    assert guest.infer("lr-guide", features, send)["data"]["score"] == data["score"]

    batch = guest.infer("lr-guide", call="batchInference", body={"batchDataList": [
        {"index": 0, "featureData": features, "sendToRemoteFeatureData": send},
        {"index": 1, "featureData": {"x0": 0.1}, "sendToRemoteFeatureData": {"device_id": "9"}}]})
    assert batch["retcode"] == 0 and batch["data"]["modelId"] == pmid("guest", GUEST)
    assert [r["index"] for r in batch["batchDataList"]] == [0, 1]
    assert batch["batchDataList"][0]["data"]["score"] == pytest.approx(data["score"], rel=1e-12)
    assert batch["batchDataList"][1]["data"]["score"] == pytest.approx(
        expected_score(transfer.home, {"x0": 0.1}, {"device_id": "9"}), rel=1e-12)

    query = guest.stub.queryModel(ms.QueryModelRequest(queryType=1, serviceId="LR-GU"), timeout=10)
    assert query.retcode == 0 and len(query.modelInfos) == 1
    info = query.modelInfos[0]
    assert (info.tableName, info.namespace, list(info.serviceIds)) == (VERSION, pmid("guest", GUEST), ["lr-guide"])
    assert json.loads(info.content)["federationModelMap"][HOST]["namespace"] == pmid("host", HOST)
    query = host.stub.queryModel(ms.QueryModelRequest(queryType=2, tableName=VERSION,
                                                      namespace=pmid("host", HOST)), timeout=10)
    assert [(m.tableName, list(m.serviceIds)) for m in query.modelInfos] == [(VERSION, [])]
    assert list(guest.stub.queryModel(ms.QueryModelRequest(queryType=1, serviceId="nothing"),
                                      timeout=10).modelInfos) == []


def test_bind_before_load_is_104(pair):
    guest, _ = pair
    reply = guest.bind("never-loaded", version="202101010000000000000")
    assert reply.statusCode == 104
    assert reply.message == "model 202101010000000000000_%s is not exist " % pmid("guest", GUEST)


@pytest.mark.parametrize("service_id", ["a/b", "a:b", "a?b", "a&b"])
def test_bind_bad_service_id_is_110(pair, service_id):
    guest, _ = pair
    reply = guest.bind(service_id)
    assert reply.statusCode == 110
    assert reply.message == 'Service id contains special characters, ["?",":","/","&"]'


def test_bind_blank_service_id_is_110(pair):
    guest, _ = pair
    for service_id in ("", "   "):
        reply = guest.bind(service_id)
        assert (reply.statusCode, reply.message) == (110, "param service id is blank")


def test_load_failures_are_123(pair, transfer):
    guest, _ = pair
    closed = "http://%s:%d/v1/model/transfer" % (IP, free_port())
    for file_path, version in ((closed, VERSION), (transfer.url, "202101010000000000000")):
        reply = guest.load("guest", file_path, version=version)
        assert reply.statusCode == 123
        assert reply.message == codes.MODEL_INIT_MESSAGE
    assert "get model info from fateflow error" in guest.log


def test_load_other_load_types(pair, transfer):
    guest, _ = pair
    assert guest.load("guest", transfer.url, load_type="FILE").statusCode == 107
    reply = guest.load("guest", transfer.url, load_type="BOGUS")
    assert reply.statusCode == 110 and reply.message.endswith("LoadModelType.BOGUS")


def test_inference_unknown_service_id(pair):
    guest, _ = pair
    assert guest.infer("no-such-service", {"x0": 1}) == {"retcode": 110, "retmsg": "", "data": {}, "flag": 0}
    assert "can not find model by service id no-such-service" in guest.log
    assert guest.infer("", {"x0": 1})["retcode"] == 100


def test_inference_host_not_loaded_is_2104(pair, transfer):
    guest, _ = pair
    trained = model_store.TRAINED_VERSION   # loaded on the guest only
    assert guest.load("guest", transfer.url, version=trained).statusCode == 0
    assert guest.bind("guest-only", version=trained).statusCode == 0
    result = guest.infer("guest-only", {"x0": 1.0}, {"device_id": "1"})
    assert result["retcode"] == 2104
    assert result["retmsg"] == "host return code 104 host msg :mode is null"
    assert result["data"]["modelVersion"] == trained


def test_inference_host_unreachable_is_105(tmp_path, transfer):
    guest = Serving(tmp_path / "lonely", GUEST)
    guest.routes[HOST] = free_port()          # nobody listens there
    try:
        guest.start()
        assert guest.load("guest", transfer.url).statusCode == 0
        assert guest.bind("lonely").statusCode == 0
        result = guest.infer("lonely", {"x0": 1.0}, {"device_id": "1"})
        assert result["retcode"] == 105 and result["retmsg"].startswith("host %s remote error : " % HOST)
    finally:
        assert guest.stop() == 0


def test_model_cache_survives_restart(tmp_path, transfer):
    guest = Serving(tmp_path / "cached", GUEST, **{"model.cache.path": "."})
    try:
        guest.start()
        assert guest.load("guest", transfer.url).statusCode == 0
        assert guest.bind("cached").statusCode == 0
        assert guest.stop() == 0
        guest.start()
        infos = guest.stub.queryModel(ms.QueryModelRequest(queryType=0), timeout=10).modelInfos
        assert [(m.tableName, list(m.serviceIds)) for m in infos] == [(VERSION, ["cached"])]
        assert os.path.isfile(os.path.join(guest.home, ".fate", "serving-models.json"))
    finally:
        guest.stop()


def test_bad_config_exits_nonzero(tmp_path):
    serving = Serving(tmp_path / "bad", GUEST, port="not-a-port")
    serving.spawn()
    assert serving.proc.wait(timeout=15) == 1
    assert b"port must be an integer" in serving.proc.stderr.read()
    serving.proc.stderr.close()


# -- ZooKeeper -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory):
    java = shutil.which("java")
    if not java or not os.path.isfile(ZK_JAR):
        pytest.skip("ZooKeeper tests need java and Debian's zookeeper package (%s)" % ZK_JAR)
    from kazoo.client import KazooClient
    from kazoo.security import make_digest_acl
    base = tmp_path_factory.mktemp("zookeeper")
    port = free_port()
    cfg = base / "zoo.cfg"
    cfg.write_text("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=%s\n"
                   "admin.enableServer=false\n4lw.commands.whitelist=ruok\n" % (base / "data", port, IP))
    classpath = ZK_JAR + ":/usr/share/java/slf4j-nop.jar"
    with open(base / "zookeeper.out", "wb") as out:
        proc = subprocess.Popen([java, "-Xmx128m", "-cp", classpath,
                                 "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)],
                                stdout=out, stderr=subprocess.STDOUT)
    hosts = "%s:%d" % (IP, port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((IP, port), timeout=1) as s:
                    s.sendall(b"ruok")
                    if s.recv(4) == b"imok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ZooKeeper did not start: %s" % (base / "zookeeper.out").read_text())
            time.sleep(0.1)
        admin = KazooClient(hosts=hosts, auth_data=[("digest", "%s:%s" % (ZK_USER, ZK_PASSWORD))],
                            default_acl=[make_digest_acl(ZK_USER, ZK_PASSWORD, all=True)])
        admin.start(timeout=10)
        admin.ensure_path("/FATE-SERVICES")   # as a FATE cluster with ACLs has it
        yield hosts, admin
        admin.stop()
        admin.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def zk_props(hosts, password=ZK_PASSWORD):
    return {"zk.url": hosts, "useRegister": "true", "acl.enable": "true", "acl.username": ZK_USER,
            "acl.password": password, "zk.timeout": "5000"}


def test_zookeeper_registration(zookeeper, tmp_path, transfer):
    hosts, admin = zookeeper
    serving = Serving(tmp_path / "zk", GUEST, **zk_props(hosts))
    providers = "/FATE-SERVICES/serving/online/publishLoad/providers"
    # FATE Flow 1.5.2+ registers one transfer node per model; serving must find it (no filePath).
    per_model = "http://%s:%d/v1/model/transfer/%s/%s" % (IP, transfer.server_address[1],
                                                        pmid("guest", GUEST).replace("#", "~"), VERSION)
    transfer_node = "/FATE-SERVICES/flow/online/transfer/providers/" + urllib.parse.quote(per_model, safe="")
    admin.create(transfer_node, ephemeral=True, makepath=True)
    try:
        serving.start()
        address = "%s:%d" % (IP, serving.port)
        children = admin.get_children(providers)
        assert len(children) == 1
        assert urllib.parse.urlparse(urllib.parse.unquote(children[0])).netloc == address  # FATE Flow 1.7+
        assert urllib.parse.unquote(children[0]).split("/")[2] == address                  # FATE Flow 1.5/1.6
        stat = admin.exists("%s/%s" % (providers, children[0]))
        assert stat.ephemeralOwner != 0
        bind_children = admin.get_children("/FATE-SERVICES/serving/online/publishBind/providers")
        assert [urllib.parse.unquote(c).split("/")[2] for c in bind_children] == [address]
        acl, _ = admin.get_acls("/FATE-SERVICES/serving")
        assert [a.id.scheme for a in acl] == ["digest"]

        assert serving.load("guest", "").statusCode == 0
        assert transfer.requests[-1][0] == urllib.parse.urlparse(per_model).path
        assert serving.bind("zk-svc").statusCode == 0
        inference = admin.get_children("/FATE-SERVICES/serving/zk-svc/inference/providers")
        assert [urllib.parse.unquote(c).split("/")[2] for c in inference] == [address]
    finally:
        rc = serving.stop()
        admin.delete(transfer_node)
    assert rc == 0
    assert ZK_PASSWORD not in serving.log
    time.sleep(0.2)
    assert admin.get_children(providers) == [], "ephemeral nodes must go with the emulator's session"


def test_zookeeper_wrong_credentials_exit_nonzero(zookeeper, tmp_path):
    hosts, _ = zookeeper
    wrong = "not-the-password-42"
    serving = Serving(tmp_path / "zk-wrong", GUEST, **zk_props(hosts, password=wrong))
    serving.spawn()
    try:
        assert serving.proc.wait(timeout=20) == 1
    finally:
        serving.stop()
    assert "NoAuth" in serving.log
    assert wrong not in serving.log


def test_zookeeper_unreachable_exit_nonzero(tmp_path):
    serving = Serving(tmp_path / "zk-down", GUEST, **dict(zk_props("%s:%d" % (IP, free_port())),
                                                         **{"zk.timeout": "1000"}))
    serving.spawn()
    try:
        assert serving.proc.wait(timeout=20) == 1
    finally:
        serving.stop()
    assert "cannot connect to ZooKeeper" in serving.log


# -- in-process pieces ----------------------------------------------------------------------------------
def test_properties_syntax():
    from fate_sandbox.serving.config import parse_properties
    text = ("# comment\n! also a comment\n  party.id = 9999\nip:127.0.10.1\nport 8000\n"
            "acl.password=a\\=b\\\n    c\nempty=\nzk.url=h1:1,\\\n  h2:2\n")
    assert parse_properties(text) == {"party.id": "9999", "ip": "127.0.10.1", "port": "8000",
                                      "acl.password": "a=bc", "empty": "", "zk.url": "h1:1,h2:2"}


def test_host_features_from_file(tmp_path):
    from fate_sandbox.serving.config import ServingConfig
    from fate_sandbox.serving.models import Model
    from fate_sandbox.serving.proxy import InferenceEngine, make_packet, packet_payload
    csv_path = tmp_path / "features.csv"
    csv_path.write_text("device_id,x4,x5,x6\n8,1.0,2.0,-1.5\n")
    model = Model(VERSION, pmid("host", HOST), "host", HOST)
    model.weights, model.header = {"x4": 0.5, "x5": -0.25, "x6": 1.0}, ["x4", "x5", "x6"]

    class Manager:
        def by_table(self, table_name, namespace):
            return model if (table_name, namespace) == (model.table_name, model.namespace) else None

    engine = InferenceEngine(ServingConfig(home=str(tmp_path), party_id=HOST, feature_file=str(csv_path)),
                             Manager(), routes=None)

    def ask(send, namespace=model.namespace):
        packet = make_packet(GUEST, HOST, "federatedInference", {"sendToRemoteFeatureData": send},
                             VERSION, namespace)
        return packet_payload(engine.host(json.loads(json.dumps(packet))))

    assert ask({"device_id": "8"})["data"]["score"] == pytest.approx(0.5 - 0.5 - 1.5)
    assert ask({"phone": "8"})["retcode"] == 0             # any id value may match
    assert ask({"device_id": "7"}) == {"retcode": codes.HOST_FEATURE_NOT_EXIST,
                                       "retmsg": codes.HOST_ADAPTOR_ERROR_MESSAGE}
    assert ask({"device_id": "8"}, namespace="other") == {"retcode": 104, "retmsg": "mode is null"}
    assert (codes.remote_code(113), codes.remote_message(113, "adaptor return error")) == (
        2113, "host return code 113 host msg :adaptor return error")


def test_transfer_url_choice():
    from fate_sandbox.serving.config import ServingConfig
    from fate_sandbox.serving.loader import TRANSFER_PROVIDERS, FlowModelLoader

    class Registry:
        def __init__(self, children):
            self.nodes = children

        def children(self, path):
            assert path == TRANSFER_PROVIDERS
            return self.nodes

    own, other = "http://127.0.77.1:9380/v1/model/transfer", "http://127.0.77.3:9380/v1/model/transfer"
    per_model = other + "/guest~9999~m/v1"
    config = ServingConfig(home="/nonexistent", model_transfer_url=own)
    nodes = [urllib.parse.quote(other, safe=" "), urllib.parse.quote(own, safe=" "),
             urllib.parse.quote(per_model, safe="")]
    assert FlowModelLoader(config).resolve_url("v1", "guest#9999#m") == own
    assert FlowModelLoader(config).resolve_url("v1", "guest#9999#m", "http%3A%2F%2Fa%3A1%2Fx") == "http://a:1/x"
    assert FlowModelLoader(config, Registry(nodes)).resolve_url("v1", "guest#9999#m") == per_model
    assert FlowModelLoader(config, Registry(nodes)).resolve_url("v2", "guest#9999#m") == own
    assert FlowModelLoader(config, Registry(nodes[:1])).resolve_url("v2", "guest#9999#m") == other
    assert FlowModelLoader(config, Registry([])).resolve_url("v2", "guest#9999#m") == own
