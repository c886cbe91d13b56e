"""The sandbox launcher (python -m fate_sandbox start|stop|status) and the homes it writes."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import launcher, party_of, read_federation, start_args
from fate_sandbox import federation as fedlib
from fate_sandbox import model_store

pytestmark = pytest.mark.timeout(300)

PARTY_KEYS = {"party_id", "cluster", "roles", "version", "fate_version", "address", "flow_url", "flow_http_port",
              "flow_grpc_port", "fate_home", "config_files", "service_script", "model_local_cache", "temp_dir",
              "log_dir", "supervisor", "serving", "route_table", "fate_env", "version_path", "flow_version"}


def read_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def read_properties(path):
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                props[key] = value
    return props


def read_state(fed):
    with open(os.path.join(fed["root"], "state.json")) as f:
        return json.load(f)


def supervisorctl(fed, party, *args):
    return subprocess.run([fed["supervisorctl"], "-c", party["supervisor"]["config"]] + list(args),
                          capture_output=True, text=True, timeout=60)


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# a running default sandbox
# --------------------------------------------------------------------------------------------

def test_federation_json_is_complete(federation):
    fed = federation
    assert " " in fed["root"] and "#" in fed["root"]
    assert set(fed) >= {"root", "python", "zookeeper", "model", "clusters", "migration", "parties"}
    assert fed["clusters"] == {"source": {"version": "1.6", "parties": ["9999", "10000"]},
                               "destination": {"version": "1.11", "parties": ["99", "100"]}}
    assert fed["model"] == {"model_id": "arbiter-10000#guest-9999#host-10000#model",
                            "trained_version": "202006171904247702041",
                            "deployed_version": "202006171911346893310",
                            "roles": {"guest": [9999], "host": [10000], "arbiter": [10000]}}
    assert fed["migration"] == {"role": {"guest": [9999], "host": [10000], "arbiter": [10000]},
                                "migrate_role": {"guest": [99], "host": [100], "arbiter": [100]}}
    assert fed["zookeeper"]["enabled"] is False and fed["zookeeper"]["hosts"] == []
    assert os.access(fed["python"], os.X_OK)

    base = fed["parties"]["9999"]["flow_http_port"]
    subnet = fed["parties"]["9999"]["address"].rsplit(".", 1)[0]
    for index, party_id in enumerate(["9999", "10000", "99", "100"]):
        party = fed["parties"][party_id]
        assert set(party) >= PARTY_KEYS, PARTY_KEYS - set(party)
        assert party["party_id"] == party_id
        assert party["address"] == "%s.%d" % (subnet, index + 1)
        assert party["flow_http_port"] == base + 10 * index
        assert party["flow_grpc_port"] == base + 10 * index + 1
        assert party["serving"]["grpc_address"] == "%s:%d" % (party["address"], base + 10 * index + 2)
        assert party["serving"]["inference_url"] == "http://%s:%d/federation/v1/inference" % (
            party["address"], base + 10 * index + 3)
        assert party["flow_url"] == "http://%s:%d" % (party["address"], party["flow_http_port"])
        for path in [party["fate_home"], party["service_script"], party["model_local_cache"], party["temp_dir"],
                     party["log_dir"], party["route_table"], party["supervisor"]["config"],
                     party["supervisor"]["socket"], party["serving"]["home"], party["serving"]["config_file"],
                     party["serving"]["route_table"]] + party["config_files"]:
            assert os.path.exists(path), path
        assert party["supervisor"]["server_url"] == "unix://" + party["supervisor"]["socket"]
        assert party["supervisor"]["flow_program"] == "fate-fateflow"
        assert party["supervisor"]["serving_program"] == "fate-serving-server"
    assert fed["parties"]["9999"]["roles"] == ["guest"] and fed["parties"]["100"]["roles"] == ["host", "arbiter"]


def test_source_parties_have_the_guide_model(federation):
    fed = federation
    for party_id, role in (("9999", "guest"), ("10000", "host"), ("10000", "arbiter")):
        party = party_of(fed, party_id)
        for version in (fed["model"]["trained_version"], fed["model"]["deployed_version"]):
            path = os.path.join(party["model_local_cache"],
                                "%s#%s#%s" % (role, party_id, fed["model"]["model_id"]), version)
            assert model_store.exists(path), path


def test_flow_config_per_version(federation):
    fed = federation
    for party in fed["parties"].values():
        assert party["config_files"] == [os.path.join(party["fate_home"], "conf", "service_conf.yaml")]
        with open(party["config_files"][0]) as f:
            text = f.read()
        conf = yaml.safe_load(text)
        assert re.search(r"^\s*# ", text, re.M), "shipped configs carry comments"
        assert conf["fateflow"]["host"] == party["address"]
        assert conf["fateflow"]["http_port"] == party["flow_http_port"]
        assert conf["fateflow"]["grpc_port"] == party["flow_grpc_port"]
        assert conf["fateflow"]["proxy"] == "rollsite"
        assert conf["servings"] == {"hosts": [party["serving"]["grpc_address"]]}
        assert conf["use_registry"] is False
        assert conf["zookeeper"] == {"hosts": ["127.0.0.1:2181"], "use_acl": False, "user": "fate",
                                     "password": "fate"}
        assert {"database", "fate_on_eggroll", "fateboard", "model_store_address"} <= set(conf)
        with open(party["fate_env"]) as f:
            env = dict(line.strip().split("=", 1) for line in f if "=" in line)
        assert list(env) == ["FATE", "FATEFlow", "FATEBoard", "EGGROLL", "CENTOS", "UBUNTU", "PYTHON", "MAVEN",
                             "JDK", "SPARK"]
        assert env["FATE"] == party["fate_version"] and env["FATEFlow"] == party["flow_version"]
        if party["version"] == "1.6":
            assert conf["work_mode"] == 1 and "party_id" not in conf
            assert party["service_script"].endswith("/python/fate_flow/service.sh")
            assert party["log_dir"] == os.path.join(party["fate_home"], "logs", "fate_flow")
        else:
            assert party["version"] == "1.11"
            assert "work_mode" not in conf
            assert conf["party_id"] == int(party["party_id"])
            assert conf["fateflow"]["http_app_key"] is None and conf["fateflow"]["http_secret_key"] is None
            assert conf["fateflow"]["protocol"] == "default" and conf["fateflow"]["random_instance_id"] is False
            assert set(conf["fateflow"]["nginx"]) == {"host", "http_port", "grpc_port"}
            assert conf["default_engines"] == {"computing": "eggroll", "federation": "eggroll", "storage": "eggroll"}
            assert conf["enable_model_store"] is False
            assert {"use_deserialize_safe_module", "dependent_distribution"} <= set(conf)
            assert party["service_script"].endswith("/fateflow/bin/service.sh")
            assert party["log_dir"] == os.path.join(party["fate_home"], "fateflow", "logs", "fate_flow")


def test_route_tables(federation):
    fed = federation
    for party in fed["parties"].values():
        with open(party["route_table"]) as f:
            table = json.load(f)["route_table"]
        assert table == {pid: {"fateflow": [{"ip": p["address"], "port": p["flow_http_port"]}]}
                         for pid, p in fed["parties"].items()}
        with open(party["serving"]["route_table"]) as f:
            table = json.load(f)["route_table"]
        assert table == {pid: {"default": [{"ip": p["address"], "port": p["serving"]["proxy_port"]}]}
                         for pid, p in fed["parties"].items() if pid != party["party_id"]}


def test_serving_properties(federation):
    for party in federation["parties"].values():
        props = read_properties(party["serving"]["config_file"])
        assert props["party.id"] == party["party_id"]
        assert props["ip"] == party["address"]
        assert props["port"] == str(party["serving"]["grpc_port"])
        assert props["proxy.port"] == str(party["serving"]["proxy_port"])
        assert props["model.transfer.url"] == party["flow_url"] + "/v1/model/transfer"
        assert props["zk.url"] == "" and props["acl.enable"] == "false"


def test_second_start_starts_nothing(sandbox, federation):
    before = read_state(federation)
    result = launcher(*sandbox.start_args[federation["root"]])
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout and "warning" not in result.stdout
    after = read_state(federation)
    assert after == before
    for entry in after["parties"].values():
        assert fedlib.pid_alive(entry["supervisord_pid"])


def test_start_with_other_options_warns_and_keeps_running(sandbox, federation):
    args = list(sandbox.start_args[federation["root"]])
    args[args.index("--source-version") + 1] = "1.8"
    before = read_state(federation)
    result = launcher(*args)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout and "warning" in result.stdout
    assert read_state(federation) == before


def test_supervisorctl_shows_both_programs_running(federation):
    for party in federation["parties"].values():
        result = supervisorctl(federation, party, "status")
        assert result.returncode == 0, result.stdout + result.stderr
        states = dict(line.split()[:2] for line in result.stdout.splitlines() if line.strip())
        assert states == {"fate-fateflow": "RUNNING", "fate-serving-server": "RUNNING"}


def test_status_command(federation):
    result = launcher("status", "--root", federation["root"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("fate-fateflow") == 4 and result.stdout.count(": answers") == 4


def test_flows_answer(federation, flow_post):
    for party in federation["parties"].values():
        reply = flow_post(party, party["version_path"], {})
        assert reply.status_code == 200


# --------------------------------------------------------------------------------------------
# a sandbox of this test's own: service.sh, then stop
# --------------------------------------------------------------------------------------------

def test_service_script_and_stop(sandbox_slots):
    # whitespace before '#' and ';' starts a comment in supervisord's config: the launcher must cope
    slot = sandbox_slots.allocate(name="own #1 ;x")
    begin = time.monotonic()
    result = launcher(*start_args(slot, source="1.8", destination="1.6"))
    start_seconds = time.monotonic() - begin
    assert result.returncode == 0, result.stdout + result.stderr
    fed = read_federation(slot["root"])
    state = read_state(fed)

    # service.sh start|status|stop on a party whose supervisord program is stopped
    party = party_of(fed, "10000")
    assert supervisorctl(fed, party, "stop", "fate-fateflow").returncode == 0
    script = party["service_script"]
    out = subprocess.run(["bash", script, "status"], capture_output=True, text=True, timeout=30).stdout
    assert "service not running" in out
    out = subprocess.run(["bash", script, "start"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"service start sucessfully\. pid: (\d+)", out)
    assert match, out
    assert port_open(party["address"], party["flow_http_port"])
    out = subprocess.run(["bash", script, "start"], capture_output=True, text=True, timeout=60).stdout
    assert "service already started. pid: %s" % match.group(1) in out
    out = subprocess.run(["bash", script, "status"], capture_output=True, text=True, timeout=30).stdout
    assert match.group(1) in out and str(party["flow_http_port"]) in out
    out = subprocess.run(["bash", script, "stop"], capture_output=True, text=True, timeout=60).stdout
    assert "killed by SIGTERM" in out, out
    assert not port_open(party["address"], party["flow_http_port"])
    assert supervisorctl(fed, party, "start", "fate-fateflow").returncode == 0

    programs = []
    for p in fed["parties"].values():
        pids = supervisorctl(fed, p, "pid", "all").stdout.split()
        assert len(pids) == 2 and all(pid.isdigit() and pid != "0" for pid in pids), pids
        programs += [int(pid) for pid in pids]
    supervisords = [entry["supervisord_pid"] for entry in state["parties"].values()]

    # a sandbox that lost a party is not "running": start stops what is left and starts afresh
    os.kill(state["parties"]["99"]["supervisord_pid"], 15)
    deadline = time.monotonic() + 20
    while port_open(party_of(fed, "99")["address"], party_of(fed, "99")["flow_http_port"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = launcher(*start_args(slot, source="1.8", destination="1.6"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not healthy" in result.stdout and "sandbox up" in result.stdout
    new_state = read_state(fed)
    assert not set(e["supervisord_pid"] for e in new_state["parties"].values()) & set(supervisords)
    for pid in supervisords + programs:
        assert not fedlib.pid_alive(pid), pid
    supervisords = [entry["supervisord_pid"] for entry in new_state["parties"].values()]
    for p in fed["parties"].values():
        programs += [int(pid) for pid in supervisorctl(fed, p, "pid", "all").stdout.split()]

    begin = time.monotonic()
    result = launcher("stop", "--root", fed["root"])
    stop_seconds = time.monotonic() - begin
    assert result.returncode == 0, result.stdout + result.stderr
    assert not os.path.exists(os.path.join(fed["root"], "state.json"))
    for pid in programs + supervisords:
        assert not fedlib.pid_alive(pid), pid
    for p in fed["parties"].values():
        for host, port in fedlib.party_ports(p):
            assert not port_open(host, port), (host, port)
        assert not os.path.exists(p["supervisor"]["pid_file"])

    again = launcher("stop", "--root", fed["root"])
    assert again.returncode == 0 and "not running" in again.stdout
    status = launcher("status", "--root", fed["root"])
    assert status.returncode == 3 and "not running" in status.stdout
    print("sandbox start %.1f s, stop %.1f s" % (start_seconds, stop_seconds))


def test_start_refuses_ports_in_use(sandbox_slots):
    slot = sandbox_slots.allocate()
    address = "%s.3" % slot["subnet"]
    port = slot["base_port"] + 22          # party 99's serving gRPC port
    with socket.socket() as busy:
        busy.bind((address, port))
        busy.listen()
        result = launcher(*start_args(slot))
    assert result.returncode == 1
    assert "in use" in result.stderr and "%s:%d" % (address, port) in result.stderr
    assert not os.path.exists(os.path.join(slot["root"], "state.json"))


def test_failed_start_names_the_party_and_rolls_back(sandbox_slots):
    slot = sandbox_slots.allocate()
    result = launcher(*start_args(slot) + ["--timeout", "0.2"])
    assert result.returncode == 1
    assert re.search(r"party \d+ \(\w+ cluster, FATE [\d.]+\): not up within", result.stderr), result.stderr
    assert "fate_flow/error.log" in result.stderr, "the log files are named (with their last lines)"
    assert "stopping what was started" in result.stdout
    assert not os.path.exists(os.path.join(slot["root"], "state.json"))
    assert not os.path.exists(os.path.join(slot["root"], "federation.json"))
    for party_id in ("9999", "10000", "99", "100"):
        assert not os.path.exists(os.path.join(slot["root"], "parties", party_id, "supervisor", "supervisord.pid"))
    for index in range(4):
        for k in range(4):
            assert not port_open("%s.%d" % (slot["subnet"], index + 1), slot["base_port"] + 10 * index + k)


# --------------------------------------------------------------------------------------------
# ZooKeeper, registry, FATE 1.4
# --------------------------------------------------------------------------------------------

def test_zookeeper_acl(sandbox):
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl

    fed = sandbox(zookeeper=True)
    zk_conf = fed["zookeeper"]
    assert zk_conf["enabled"] and zk_conf["use_acl"] and zk_conf["user"] == "fate"
    assert len(zk_conf["password"]) >= 16 and zk_conf["password"] != "fate"
    hosts = ",".join(zk_conf["hosts"])

    def client(password=None):
        kwargs = {}
        if password is not None:
            kwargs["auth_data"] = [("digest", "fate:%s" % password)]
        zk = KazooClient(hosts=hosts, timeout=10, **kwargs)
        zk.start(timeout=10)
        return zk

    for password in ("wrong", None):
        zk = client(password)
        try:
            for root in ("/FATE-SERVICES", "/FATE-COMPONENTS"):
                with pytest.raises(NoAuthError):
                    zk.get_children(root)
                with pytest.raises(NoAuthError):
                    zk.create(root + "/intruder", b"")
        finally:
            zk.stop()
            zk.close()

    zk = client(zk_conf["password"])
    try:
        acl = [make_digest_acl("fate", zk_conf["password"], all=True)]
        zk.create("/FATE-SERVICES/launcher-test", b"x", acl=acl, ephemeral=True)
        assert "launcher-test" in zk.get_children("/FATE-SERVICES")
        zk.delete("/FATE-SERVICES/launcher-test")
    finally:
        zk.stop()
        zk.close()

    for party in fed["parties"].values():
        conf = read_yaml(party["config_files"][0])
        assert conf["use_registry"] is False
        assert conf["zookeeper"] == {"hosts": zk_conf["hosts"], "use_acl": True, "user": "fate",
                                     "password": zk_conf["password"]}
        props = read_properties(party["serving"]["config_file"])
        assert props["zk.url"] == hosts and props["useRegister"] == "true"
        assert (props["acl.enable"], props["acl.username"], props["acl.password"]) == (
            "true", "fate", zk_conf["password"])


def test_registry_sets_use_registry_and_services_register(sandbox):
    from fate_sandbox import zk as zklib

    fed = sandbox(registry=True)
    assert fed["use_registry"] is True and fed["zookeeper"]["enabled"]
    for party in fed["parties"].values():
        assert read_yaml(party["config_files"][0])["use_registry"] is True
    client = zklib.client(fed["zookeeper"]["hosts"], "fate", fed["zookeeper"]["password"])
    try:
        deadline = time.monotonic() + 10
        while True:
            loads = client.get_children("/FATE-SERVICES/serving/online/publishLoad/providers") \
                if client.exists("/FATE-SERVICES/serving/online/publishLoad/providers") else []
            transfers = client.get_children("/FATE-SERVICES/flow/online/transfer/providers") \
                if client.exists("/FATE-SERVICES/flow/online/transfer/providers") else []
            if len(loads) == 4 and transfers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        client.stop()
        client.close()
    assert len(loads) == 4, loads
    assert transfers


def test_fate_1_4_party_layout(sandbox, flow_post):
    fed = sandbox(source="1.4", destination="1.6")
    party = party_of(fed, "9999")
    home = party["fate_home"]
    assert party["version"] == "1.4" and party["fate_env"] is None
    assert not os.path.exists(os.path.join(home, "fate.env"))
    assert not os.path.exists(os.path.join(home, "conf", "service_conf.yaml"))
    assert party["config_files"] == [os.path.join(home, "arch", "conf", "server_conf.json"),
                                     os.path.join(home, "arch", "conf", "base_conf.yaml")]
    with open(party["config_files"][0]) as f:
        servers = json.load(f)["servers"]
    assert servers["fateflow"] == {"host": party["address"], "grpc.port": party["flow_grpc_port"],
                                   "http.port": party["flow_http_port"]}
    assert servers["servings"] == [party["serving"]["grpc_address"]]
    assert {"roll", "federation", "proxy", "fateboard"} <= set(servers)
    base = read_yaml(party["config_files"][1])
    assert base["work_mode"] == 1 and base["use_registry"] is False
    assert base["fate_flow"] == {"host": party["address"], "http_port": party["flow_http_port"],
                                 "grpc_port": party["flow_grpc_port"]}
    assert {"database", "zookeeper", "model_store_address"} <= set(base)
    assert party["service_script"] == os.path.join(home, "fate_flow", "service.sh")
    assert flow_post(party, "/v1/version/get", {"module": "FATE"}).status_code == 200


# --------------------------------------------------------------------------------------------
# files only (no process)
# --------------------------------------------------------------------------------------------

def test_party_version_override_and_1_8_shape(tmp_path):
    root = str(tmp_path / ("deep" * 10) / "r")     # too deep for supervisor.sock under the root
    options = fedlib.Options(root=root, party_versions={"10000": "1.8"}, base_port=30000)
    fed = fedlib.prepare(options, seed=False)
    sockets = {p["supervisor"]["socket"] for p in fed["parties"].values()}
    try:
        assert len(sockets) == 4
        for path in sockets:
            assert path.startswith("/tmp/fate-sandbox-") and len(path) <= 107
            assert "unix://" + path in open(os.path.join(root, "parties", os.path.basename(path)[:-5],
                                                         "supervisor", "supervisord.conf")).read()
    finally:
        shutil.rmtree(os.path.dirname(next(iter(sockets))), ignore_errors=True)
    party = party_of(fed, "10000")
    assert party["version"] == "1.8" and party_of(fed, "9999")["version"] == "1.6"
    assert party["service_script"].endswith("/fateflow/bin/service.sh")
    conf = read_yaml(party["config_files"][0])
    assert "work_mode" not in conf and "party_id" not in conf and "nginx" not in conf["fateflow"]
    assert conf["fateflow"]["http_app_key"] is None and conf["enable_model_store"] is False
    with pytest.raises(fedlib.SandboxError):
        fedlib.Options(root=str(tmp_path), party_versions={"12345": "1.8"})
    with pytest.raises(fedlib.SandboxError):
        fedlib.Options(root=str(tmp_path), source_version="2.0")


@pytest.mark.parametrize("name", ["a #b;c d ;e'g", "p%q r#s'$t"])
def test_hostile_root_is_quoted_everywhere(name, request):
    """Roots with whitespace before '#' and ';' (comment starts for supervisord), '%', quotes, '$'."""
    from supervisor.options import ServerOptions

    base = tempfile.TemporaryDirectory(prefix="fs ")     # short: the unix socket path limit
    request.addfinalizer(base.cleanup)
    root = os.path.join(base.name, name)
    fed = fedlib.prepare(fedlib.Options(root=root, base_port=30100), seed=False)
    for party in fed["parties"].values():
        options = ServerOptions()
        options.realize(args=["-c", party["supervisor"]["config"]])
        groups = {g.name: g.process_configs[0] for g in options.process_group_configs}
        flow, serving = groups["fate-fateflow"], groups["fate-serving-server"]
        argv = shlex.split(flow.command)
        assert argv[0] == "/bin/bash" and argv[2] == "starting"
        assert os.path.normpath(argv[1]) == party["service_script"]
        assert os.path.normpath(flow.stdout_logfile) == os.path.join(party["log_dir"], "console.log")
        assert os.path.normpath(flow.stderr_logfile) == os.path.join(party["log_dir"], "error.log")
        assert os.path.normpath(flow.directory) == party["fate_home"]
        argv = shlex.split(serving.command)
        assert argv[0] == fed["python"] and os.path.normpath(argv[-1]) == party["serving"]["home"]
        assert serving.environment == {"PYTHONPATH": fed["sandbox_path"]}
        assert os.path.normpath(options.pidfile) == party["supervisor"]["pid_file"]
        assert os.path.normpath(options.logfile) == party["supervisor"]["log_file"]
        assert os.path.normpath(options.directory) == os.path.dirname(party["supervisor"]["config"])
        assert os.path.normpath(options.server_configs[0]["file"]) == party["supervisor"]["socket"]
        # the service script parses, and finds its config by the quoted paths
        assert subprocess.run(["bash", "-n", party["service_script"]]).returncode == 0
        out = subprocess.run(["bash", party["service_script"], "status"], capture_output=True, text=True,
                             timeout=30)
        assert out.stdout.strip() == "service not running", out.stdout + out.stderr
        out = subprocess.run(["bash", "-c", 'source "$1"; echo "$FATE_PROJECT_BASE"', "-",
                              os.path.join(party["fate_home"], "bin", "init_env.sh")],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == party["fate_home"]


def test_supervisord_config_cannot_hold_comment_and_percent():
    with tempfile.TemporaryDirectory(prefix="fs ") as base:
        with pytest.raises(fedlib.SandboxError):
            fedlib.prepare(fedlib.Options(root=os.path.join(base, "x #y%z"), base_port=30200), seed=False)


# --------------------------------------------------------------------------------------------
# --pairs and --model-size (the pipeline benchmark's federations, bench/pipeline.py)
# --------------------------------------------------------------------------------------------

def test_pairs_layout_and_default_is_the_guide(tmp_path):
    default = fedlib.plan(fedlib.Options(root=str(tmp_path)), "pw")
    assert fedlib.plan(fedlib.Options(root=str(tmp_path), pairs=2), "pw") == default
    assert "pairs" not in default["options"] and "payload" not in default["model"]

    fed = fedlib.plan(fedlib.Options(root=str(tmp_path), pairs=16, base_port=30000, subnet="127.0.77"), "pw")
    parties = list(fed["parties"].values())
    assert [p["party_id"] for p in parties] == [str(9999 + i) for i in range(16)] + [str(99 + i) for i in range(16)]
    assert [p["address"] for p in parties] == ["127.0.77.%d" % (i + 1) for i in range(32)]
    assert [p["flow_http_port"] for p in parties] == [30000 + 10 * i for i in range(32)]
    assert {p["ssh"]["port"] for p in parties} == {30009}
    hosts = [str(10000 + i) for i in range(15)]
    assert fed["migration"]["role"] == {"guest": [9999], "host": [int(h) for h in hosts], "arbiter": [10000]}
    assert fed["migration"]["migrate_role"] == {"guest": [99], "host": list(range(100, 115)), "arbiter": [100]}
    assert fed["model"]["model_id"] == "arbiter-10000#guest-9999#host-%s#model" % "_".join(hosts)
    assert fed["options"]["pairs"] == 16
    assert fed["clusters"]["destination"]["parties"] == [str(99 + i) for i in range(16)]
    route = fedlib.flow_route_table(fed)["route_table"]
    assert len(route) == 32 and route["114"]["fateflow"] == [{"ip": "127.0.77.32", "port": 30310}]
    # the bench's inventories (tests/sandbox/pipeline_inventory.py) for such a federation
    from pipeline_inventory import inventory
    hosts_yml, group_vars = inventory(fed)
    children = hosts_yml["all"]["children"]
    assert list(children["fate_source"]["children"]) == ["party_%d" % (9999 + i) for i in range(16)]
    assert list(children["fate_destination"]["children"]) == ["party_%d" % (99 + i) for i in range(16)]
    assert len(children["fate_parties"]["hosts"]) == 32
    assert hosts_yml["all"]["hosts"]["party114"]["ansible_host"] == "127.0.77.32"
    assert group_vars == {"fate_model_id": fed["model"]["model_id"], "fate_model_version": "202006171911346893310",
                          "fate_source_guest": "9999", "fate_source_host": ",".join(hosts),
                          "fate_source_arbiter": "10000", "fate_destination_guest": "99",
                          "fate_destination_host": ",".join(str(i) for i in range(100, 115)),
                          "fate_destination_arbiter": "100"}

    one = fedlib.plan(fedlib.Options(root=str(tmp_path), pairs=1), "pw")
    assert [(p["party_id"], p["roles"]) for p in one["parties"].values()] == \
        [("9999", ["guest", "host", "arbiter"]), ("99", ["guest", "host", "arbiter"])]
    assert one["model"]["model_id"] == "arbiter-9999#guest-9999#host-9999#model"
    for bad in (0, 101, "x"):
        with pytest.raises(fedlib.SandboxError, match="--pairs"):
            fedlib.Options(root=str(tmp_path), pairs=bad)
    with pytest.raises(fedlib.SandboxError, match="unknown party 10001"):
        fedlib.Options(root=str(tmp_path), party_versions={"10001": "1.8"})
    assert fedlib.Options(root=str(tmp_path), pairs=3, party_versions={"10001": "1.8"}).version_of("10001",
                                                                                                "source") == "1.8"


def test_model_size_options(tmp_path):
    assert [fedlib.parse_size(t) for t in ("100M", "1G", "4GiB", "512k", "1048576", "", 0)] == \
        [100 << 20, 1 << 30, 4 << 30, 512 << 10, 1 << 20, 0, 0]
    for bad in ("1.5G", "-1G", "lots"):
        with pytest.raises(fedlib.SandboxError, match="--model-size"):
            fedlib.Options(root=str(tmp_path), model_size=bad)
    with pytest.raises(fedlib.SandboxError, match="not a source party"):
        fedlib.Options(root=str(tmp_path), model_size="1M", model_size_parties=["99"])
    with pytest.raises(fedlib.SandboxError, match="needs --model-size"):
        fedlib.Options(root=str(tmp_path), model_size_parties=["9999"])
    options = fedlib.Options(root=str(tmp_path), pairs=3, model_size="1M", model_size_parties=["10001", "9999"])
    assert options.payload_parties() == ["9999", "10001"]
    assert fedlib.plan(options, "pw")["model"]["payload"] == {
        "size": 1 << 20, "parties": ["9999", "10001"], "path": model_store.PAYLOAD_PATH}


def test_one_pair_with_a_model_payload_starts_and_migrates(sandbox_slots, flow_post):
    """--pairs 1 --model-size: guest, host and arbiter on one party per cluster; the payload is in the deployed
    model of the party's first role, incompressible, and migrate's archive carries it."""
    import zipfile
    import zlib
    slot = sandbox_slots.allocate()
    result = launcher(*start_args(slot) + ["--pairs", "1", "--model-size", "3M"])
    assert result.returncode == 0, result.stdout + result.stderr
    fed = read_federation(slot["root"])
    assert sorted(fed["parties"]) == ["99", "9999"]
    assert fed["model"]["payload"] == {"size": 3 << 20, "parties": ["9999"], "path": model_store.PAYLOAD_PATH}
    source = party_of(fed, "9999")
    model_id = fed["model"]["model_id"]
    for role in ("guest", "host", "arbiter"):
        for version in (fed["model"]["trained_version"], fed["model"]["deployed_version"]):
            path = os.path.join(source["model_local_cache"], "%s#9999#%s" % (role, model_id), version)
            assert model_store.exists(path), path
            payload = os.path.join(path, model_store.PAYLOAD_PATH)
            if role == "guest" and version == fed["model"]["deployed_version"]:
                assert os.path.getsize(payload) == 3 << 20
                with open(payload, "rb") as f:
                    data = f.read()
                assert len(zlib.compress(data, 6)) > 0.99 * len(data)
            else:
                assert not os.path.exists(payload)
    migration = fed["migration"]
    answer = flow_post(source, "/v1/model/migrate", {
        "job_parameters": {"federated_mode": "SINGLE"},
        "migrate_initiator": {"role": "guest", "party_id": 99},
        "role": migration["role"], "migrate_role": migration["migrate_role"],
        "execute_party": {"guest": [9999]}, "model_id": model_id,
        "model_version": fed["model"]["deployed_version"], "unify_model_version": "payload_test"}).json()
    assert answer["retcode"] == 0, answer
    archive = re.search(r"Model files can be found at '([^']+)'", answer["data"]["detail"]["guest"]["9999"]["retmsg"])
    assert os.path.getsize(archive.group(1)) > 3 << 20
    with zipfile.ZipFile(archive.group(1)) as zf:
        assert zf.getinfo(model_store.PAYLOAD_PATH).file_size == 3 << 20
        assert zf.getinfo(model_store.PAYLOAD_PATH).compress_type == zipfile.ZIP_STORED
    assert launcher("stop", "--root", fed["root"]).returncode == 0
