"""Issue #7, faults 9-12: the serving link, FATE Flow restarts, ZooKeeper and FATE-Serving (docs/faults.md).

Every fault is injected for real on a sandbox federation reached over SSH (one sshd per party address), with real
supervisord and a real ZooKeeper with a digest ACL, by running the operator's playbooks (playbooks/link_serving.yml,
playbooks/pipeline.yml, playbooks/publish.yml) or the module the fault belongs to. Each case asserts:

(a) the error names the party (its inventory host, e.g. ``fatal: [party99]``, or its id), the step (the task) and
    what to do;
(b) nothing is lost: every file under every FATE home and FATE-Serving home (logs and SQLite files left out), the
    model tables and the pid of every supervisord program and of ZooKeeper are compared before and after (a
    restart that the case asks for is the only pid allowed to change);
(c) a plain rerun after the fault is removed converges.

Sandboxes (shared with other files of the session that ask for the same configuration):
* ``LINK``: source 1.4 (9999, 10000: arch/conf/server_conf.json + base_conf.yaml), destination 1.6 (99, 100:
  conf/service_conf.yaml), ZooKeeper with ACL, FATE Flow not using it (the serving link switches);
* ``REGISTRY``: source 1.6, destination 1.11, every FATE Flow and FATE-Serving on ZooKeeper (use_registry on): the
  pipeline runs there once (module fixture) for the FATE-Serving faults.
Each test puts back what it changed (configs, stopped programs) in a finally block.
"""
import os
import re
import time

import pytest

import fault_env as fe
from pipeline_inventory import host_name

pytestmark = pytest.mark.timeout(900)

LINK = dict(source="1.4", destination="1.6", zookeeper=True)
REGISTRY = dict(source="1.6", destination="1.11", registry=True)


def link_vars(party_id, **extra):
    """Extra vars of link_serving.yml for one party (the report goes to the test's own dir)."""
    variables = {"fate_serving_link_hosts": host_name(party_id), "fate_restart_timeout": 15}
    variables.update(extra)
    return variables


def zk_host_vars(fed, party_id, password=None, hosts=None):
    zk = fed["zookeeper"]
    return {str(party_id): {"fate_zookeeper_hosts": ",".join(hosts or zk["hosts"]), "fate_zookeeper_use_acl": True,
                            "fate_zookeeper_user": zk["user"], "fate_zookeeper_password": password or zk["password"]}}


def serving_host_vars(party_id, servings):
    return {str(party_id): {"fate_servings": ",".join(servings)}}


def failed_on(run, host):
    found = [f for f in fe.failures(run) if f[0] == host]
    assert found, "no failure on %s:\n%s" % (host, run.output[-5000:])
    return found


def assert_fatal_line(run, host, *fragments):
    """(a) the screen output has a fatal entry for the party's host (one line, or a block at -vvv) whose message
    holds every fragment."""
    blocks, current = [], None
    for line in run.output.splitlines():
        if line.startswith("fatal: [%s]" % host):
            current = [line]
            blocks.append(current)
        elif current is not None and line.strip() and not line.startswith(("TASK [", "PLAY ", "ok: [", "fatal: [")):
            current.append(line)
        else:
            current = None
    assert blocks, run.output[-5000:]
    text = "\n".join("\n".join(block) for block in blocks)
    for fragment in fragments:
        assert fragment in text, "%r not in the failure of %s:\n%s" % (fragment, host, text)


@pytest.fixture
def keep(request):
    """keep(fed, party): the party's config files are put back after the test (FATE Flow restarted if they
    differed), the backups removed, stopped programs started again."""
    saved = []

    def register(fed, party):
        saved.append((fed, party, fe.config_bytes(party)))

    yield register
    for fed, party, original in saved:
        for key in ("serving_program", "flow_program"):
            if fe.program_pid(fed, party, party["supervisor"][key]) is None:
                fe.start_program(fed, party, key)
        fe.put_back(fed, party, original)


# ------------------------------------------------------------------------------------------------ 9. invalid config

@pytest.mark.parametrize("config", [
    # (sandbox, party, broken file, link mode of the run: a new servings list / the current one / ZooKeeper)
    pytest.param(("LINK", "9999", "server_conf.json", "new servings"), id="fate-1.4-server_conf.json"),
    pytest.param(("LINK", "9999", "base_conf.yaml", "same servings"), id="fate-1.4-base_conf.yaml"),
    pytest.param(("REGISTRY", "99", "service_conf.yaml", "zookeeper"), id="fate-1.11-service_conf.yaml"),
])
def test_invalid_config_file_is_refused_byte_identical(sandbox, keep, tmp_path, config):
    """9. A FATE Flow config file that is not valid JSON/YAML: the serving link refuses it, names file and line and
    what to do, leaves it byte-identical and restarts nothing; after the file is fixed, a rerun converges."""
    which, party_id, filename, mode = config
    fed = sandbox(**(LINK if which == "LINK" else REGISTRY))
    party = fed["parties"][party_id]
    keep(fed, party)
    path = [p for p in party["config_files"] if os.path.basename(p) == filename][0]
    kind = "json" if filename.endswith(".json") else "yaml"
    with open(path, "rb") as handle:
        good = handle.read()
    # JSON: a member cut off before the closing brace; YAML: an unterminated flow mapping at the end
    if kind == "json":
        broken = good.rstrip()[:-1].rstrip() + b',\n    "broken": [1, 2,\n}\n'
    else:
        broken = good + b"\n{ not: [valid\n"
    broken_line = broken.count(b"\n")
    with open(path, "wb") as handle:
        handle.write(broken)
    own = party["serving"]["grpc_address"]
    host_vars = {"new servings": serving_host_vars(party_id, [own, fed["parties"]["10000"]["serving"]["grpc_address"]]),
                 "same servings": serving_host_vars(party_id, [own]),
                 "zookeeper": zk_host_vars(fed, party_id)}[mode]
    inventory = fe.inventory(fed, tmp_path / "inventory", **host_vars)
    before = fe.state(fed)
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars(party_id, fate_report_dir=str(tmp_path)),
                 name="broken")
    assert run.rc != 0, run
    host = host_name(party_id)
    [(_, task, msg)] = failed_on(run, host)
    assert task == "Set the serving link in FATE Flow's config"                                 # the step
    kind_name = kind.upper()
    assert re.search(r"%s is not valid %s \(line \d+, column \d+: " % (re.escape(path), kind_name), msg), msg
    line = int(re.search(r"\(line (\d+),", msg).group(1))
    assert broken_line - 2 <= line <= broken_line + 1, (line, broken_line, msg)                 # the right line
    assert "fix it by hand" in msg and "then run again" in msg and "nothing was written" in msg  # what to do
    assert_fatal_line(run, host, "is not valid %s" % kind_name)
    # (b) byte-identical, no backup, nothing restarted or lost anywhere
    with open(path, "rb") as handle:
        assert handle.read() == broken
    assert fe.backups_of(party) == []
    assert fe.diff_state(before, fe.state(fed)) == []
    # (c) the file fixed, a plain rerun converges: the link is as asked and FATE Flow healthy on it
    with open(path, "wb") as handle:
        handle.write(good)
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars(party_id, fate_report_dir=str(tmp_path)),
                 name="fixed")
    assert run.rc == 0, run
    if mode == "new servings":
        import json
        with open(path) as handle:
            assert json.load(handle)["servers"]["servings"] == host_vars[party_id]["fate_servings"].split(",")
    else:
        assert run.stats[host]["changed"] == 0, run      # the link was already as asked: nothing to do
    assert fe.flow_healthy(party)


# ------------------------------------------------------------------------------------------------ 10. not back

def _squatted_restart(fed, party, tmp_path, inventory, release_when, name):
    """Run link_serving.yml while a foreign process takes FATE Flow's HTTP port as soon as the restart frees it."""
    address, port = party["address"], party["flow_http_port"]
    with fe.PortSquatter(address, port, release_when=release_when) as squatter:
        run = fe.run(tmp_path, inventory, fe.LINK_SERVING,
                     link_vars(party["party_id"], fate_report_dir=str(tmp_path)), name=name)
        held = squatter.held.is_set()
    assert held, "the squatter never got the port: the fault was not injected\n" + run.output[-3000:]
    return run


def test_flow_not_back_after_restart_is_rolled_back(sandbox, keep, tmp_path):
    """10. FATE Flow does not come back after the restart (its port is taken): the backup is restored, FATE Flow
    restarted on the old config, and the error says so; a rerun once the port is free converges."""
    fed = sandbox(**LINK)
    party = fed["parties"]["99"]
    keep(fed, party)
    assert fe.wait_until(lambda: fe.flow_healthy(party))
    original = fe.config_bytes(party)
    servings = [party["serving"]["grpc_address"], fed["parties"]["100"]["serving"]["grpc_address"]]
    inventory = fe.inventory(fed, tmp_path / "inventory", **serving_host_vars("99", servings))
    before = fe.state(fed)

    def restored():     # the squatter leaves once the role has put the old config back
        return fe.config_bytes(party) == original

    run = _squatted_restart(fed, party, tmp_path, inventory, restored, "squatted")
    assert run.rc != 0, run
    failed = failed_on(run, "party99")
    assert failed[-1][1] == "Fail, the change was rolled back", failed
    msg = failed[-1][2]
    assert party["flow_url"] in msg and "was not healthy within" in msg                          # party and step
    assert "The change was rolled back: the previous config was restored from" in msg
    assert "FATE Flow is healthy again on it" in msg
    assert "error log" in msg and "Check " in msg                                                # what to do
    # why: FATE's service.sh finds another process on FATE Flow's port, as supervisord relays it (the holder's pid)
    assert "supervisord: " in msg and "service already started. pid: %d" % os.getpid() in msg, msg
    # (b) the config is the old one, byte for byte; FATE Flow runs on it (restarted: a new pid), nothing else moved
    assert fe.config_bytes(party) == original
    assert fe.flow_healthy(party)
    flow_key = ("99", party["supervisor"]["flow_program"])
    after = fe.state(fed)
    assert after["pids"][flow_key] not in (None, before["pids"][flow_key])
    assert [p for p in fe.diff_state(before, after, ignore_pids=[flow_key])
            if not p.startswith("file %s." % party["config_files"][0])] == []   # only the backup is new
    assert len(fe.backups_of(party)) == 1
    # (c) the port free again: a plain rerun applies the change and FATE Flow is healthy on it
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("99", fate_report_dir=str(tmp_path)), name="rerun")
    assert run.rc == 0, run
    assert fe.flow_healthy(party) and fe.config_bytes(party) != original
    assert "Registered servings" not in run.output       # mode A verifies ports, not ZooKeeper


def test_flow_down_after_rollback_says_act_now(sandbox, keep, tmp_path):
    """10b. FATE Flow comes back neither on the new nor on the restored config: the error says it is DOWN and that
    the previous config was restored; once the port is free, a rerun converges."""
    fed = sandbox(**LINK)
    party = fed["parties"]["100"]
    keep(fed, party)
    assert fe.wait_until(lambda: fe.flow_healthy(party))
    original = fe.config_bytes(party)
    servings = [party["serving"]["grpc_address"], fed["parties"]["99"]["serving"]["grpc_address"]]
    inventory = fe.inventory(fed, tmp_path / "inventory", **serving_host_vars("100", servings))
    run = _squatted_restart(fed, party, tmp_path, inventory, None, "squatted")
    assert run.rc != 0, run
    msg = failed_on(run, "party100")[-1][2]
    assert "it is DOWN, act now" in msg and "The previous config was restored" in msg, msg
    assert party["flow_url"] in msg
    assert fe.config_bytes(party) == original, "the old config is back even though FATE Flow is down"
    # (c) the squatter gone (FATE Flow is FATAL in supervisord now): the rerun starts it on the new config
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("100", fate_report_dir=str(tmp_path)), name="rerun")
    assert run.rc == 0, run
    assert fe.flow_healthy(party)


# ------------------------------------------------------------------------------------------------ 11. ZooKeeper

def test_wrong_zookeeper_password_is_rolled_back(sandbox, keep, tmp_path):
    """11a. The serving link in ZooKeeper mode with a wrong password: FATE Flow stops at start (NoAuth), the old
    config is restored, the error says so without the password; with the right password a rerun converges."""
    fed = sandbox(**LINK)
    party = fed["parties"]["99"]
    keep(fed, party)
    assert fe.wait_until(lambda: fe.flow_healthy(party))
    original = fe.config_bytes(party)
    wrong = "Wr0ngZkPw%d" % int(time.time())
    inventory = fe.inventory(fed, tmp_path / "inventory", **zk_host_vars(fed, "99", password=wrong))
    before = fe.state(fed)
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("99", fate_report_dir=str(tmp_path)),
                 name="wrong", verbosity=3)
    assert run.rc != 0, run
    failed = failed_on(run, "party99")
    msg = failed[-1][2]
    assert failed[-1][1] == "Fail, the change was rolled back", failed
    assert "NoAuth" in msg and "Check the ZooKeeper hosts, user and password" in msg, msg
    assert wrong not in run.output and fed["zookeeper"]["password"] not in run.output
    assert fe.config_bytes(party) == original and fe.flow_healthy(party)
    flow_key = ("99", party["supervisor"]["flow_program"])
    assert [p for p in fe.diff_state(before, fe.state(fed), ignore_pids=[flow_key])
            if not p.startswith("file %s." % party["config_files"][0])] == []
    # (c) the right password: converges, a serving is registered, and a second rerun changes nothing
    inventory = fe.inventory(fed, tmp_path / "inventory", **zk_host_vars(fed, "99"))
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("99", fate_report_dir=str(tmp_path)), name="right")
    assert run.rc == 0, run
    assert "Registered servings" in run.output and fe.flow_healthy(party)
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("99", fate_report_dir=str(tmp_path)), name="again")
    assert run.rc == 0 and run.stats["party99"]["changed"] == 0, run


def test_zookeeper_down_is_rolled_back(sandbox, keep, tmp_path):
    """11b. The serving link in ZooKeeper mode to a ZooKeeper that is down (nothing answers on its client port):
    FATE Flow cannot start on it, the old config is restored; with the running ZooKeeper a rerun converges."""
    fed = sandbox(**LINK)
    party = fed["parties"]["100"]
    keep(fed, party)
    assert fe.wait_until(lambda: fe.flow_healthy(party))
    original = fe.config_bytes(party)
    down = ["127.0.0.1:%d" % fe.free_port()]
    inventory = fe.inventory(fed, tmp_path / "inventory", **zk_host_vars(fed, "100", hosts=down))
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("100", fate_report_dir=str(tmp_path)), name="down")
    assert run.rc != 0, run
    failed = failed_on(run, "party100")
    msg = failed[-1][2]
    assert failed[-1][1] == "Fail, the change was rolled back", failed
    assert down[0] in msg and "Check the ZooKeeper hosts" in msg, msg
    assert fed["zookeeper"]["password"] not in run.output
    assert fe.config_bytes(party) == original and fe.flow_healthy(party)
    inventory = fe.inventory(fed, tmp_path / "inventory", **zk_host_vars(fed, "100"))
    run = fe.run(tmp_path, inventory, fe.LINK_SERVING, link_vars("100", fate_report_dir=str(tmp_path)), name="up")
    assert run.rc == 0, run
    assert "Registered servings" in run.output


def _registry_task(fed, name, ignore_errors=False, **params):
    zk = fed["zookeeper"]
    args = {"hosts": zk["hosts"], "use_acl": True, "user": zk["user"], "password": zk["password"], "timeout": 3}
    args.update(params)
    return {"name": name, "fate.flow.serving_registry_info": args, "ignore_errors": ignore_errors}


def test_registry_info_wrong_password_and_zookeeper_down(sandbox, tmp_path):
    """11c. serving_registry_info on a party host: a wrong password fails with NoAuth and what to check; a
    ZooKeeper that is down fails with the hosts and what to check; neither shows the password; both change
    nothing; with the right settings the registered servings are listed (one playbook run, -vvv)."""
    fed = sandbox(**REGISTRY)
    inventory = fe.inventory(fed, tmp_path / "inventory")
    before = fe.state(fed)
    wrong = "Wr0ngZkPw%d" % int(time.time())
    cases = [("Wrong password", {"password": wrong}, ["NoAuth", "check use_acl, user and password"]),
             ("ZooKeeper down", {"hosts": ["127.0.0.1:%d" % fe.free_port()]},
              ["cannot connect to ZooKeeper 127.0.0.1:", "check that ZooKeeper runs there"])]
    tasks = [_registry_task(fed, name, ignore_errors=True, **params) for name, params, _ in cases]
    tasks.append(_registry_task(fed, "Right settings"))
    plays_path = tmp_path / "registry.yml"
    import json
    plays_path.write_text(json.dumps([{"name": "Registry", "hosts": host_name("99"), "gather_facts": False,
                                       "tasks": tasks}]))
    run = fe.run(tmp_path, inventory, str(plays_path), name="registry", verbosity=3)
    assert run.rc == 0, run
    for name, _params, fragments in cases:
        entry = run.task(name)
        assert (entry["host"], entry["status"]) == ("party99", "failed"), entry
        for fragment in fragments:
            assert fragment in entry["result"]["msg"], entry["result"]["msg"]
        assert_fatal_line(run, "party99", fragments[0])
    assert wrong not in run.output and fed["zookeeper"]["password"] not in run.output
    assert fe.diff_state(before, fe.state(fed)) == []
    servings = run.result("Right settings")["servings"]
    assert sorted(servings) == sorted(p["serving"]["grpc_address"] for p in fed["parties"].values())


# ------------------------------------------------------------------------------------------------ 12. FATE-Serving

@pytest.fixture(scope="module")
def published(sandbox, tmp_path_factory):
    """The REGISTRY sandbox with the guide's model migrated and published by playbooks/pipeline.yml (once per
    module): (fed, workdir, inventory, extra vars)."""
    fed = sandbox(**REGISTRY)
    workdir = tmp_path_factory.mktemp("published")
    inventory = fe.inventory(fed, workdir / "inventory")
    extra = {"fate_unify_model_version": "faults_serving_%d" % int(time.time()), "fate_report_dir": str(workdir)}
    run = fe.run(workdir, inventory, fe.PIPELINE, extra, name="pipeline")
    assert run.rc == 0, run
    return fed, workdir, inventory, extra


@pytest.mark.parametrize("down", [
    pytest.param("100", id="host-serving-down"),
    pytest.param("99", id="guest-serving-down"),
])
def test_serving_down_at_load_and_inference(published, keep, tmp_path, down):
    """12. FATE-Serving stopped (supervisorctl stop fate-serving-server) on a destination party: publish.yml fails
    on the initiator with a message naming the party whose FATE-Serving is down and what to do; nothing is lost;
    with FATE-Serving started again a plain rerun publishes and the inference check answers."""
    fed, _, inventory, extra = published
    extra = dict(extra, fate_report_dir=str(tmp_path))
    party = fed["parties"][down]
    keep(fed, party)
    program = party["supervisor"]["serving_program"]
    before = fe.state(fed)
    stopped = fe.supervisorctl(fed, party, "stop", program)
    assert stopped.returncode == 0 and fe.program_pid(fed, party, program) is None, stopped.stdout + stopped.stderr
    try:
        run = fe.run(tmp_path, inventory, fe.PUBLISH, extra, name="down")
        assert run.rc != 0, run
        failed = failed_on(run, "party99")
        task, msg = failed[-1][1], failed[-1][2]
        if down == "100":
            # the host's FATE-Serving: the load (FATE Flow's answer for host 100) or, when FATE Flow reports the
            # load done, the inference check (the guest's serving-proxy cannot reach host 100) names it
            assert task in ("Load the model into FATE-Serving on every guest and host party",
                            "Check that the service answers with a score from this model version"), (task, msg)
            assert re.search(r"host\W+100|100\W+\(?host", msg) and "FATE-Serving" in msg, (task, msg)
        else:
            # the guest's own serving-proxy does not answer the first inference request
            assert task == "Ask FATE-Serving whether the service already serves this model version", (task, msg)
            assert party["serving"]["proxy_url"] in msg and "is unreachable" in msg, (task, msg)
        assert re.search(r"(?i)check|start|run again|rerun", msg), "the message says what to do: %s" % msg
        serving_key = (down, program)
        # nothing lost; a load that FATE Flow reported done counts in loaded_times
        assert fe.diff_state(before, fe.state(fed), ignore_pids=[serving_key], loads_allowed=True) == []
    finally:
        fe.start_program(fed, party, "serving_program")
    # (c) FATE-Serving back (its models were in memory only): a plain rerun loads, binds and answers
    run = fe.run(tmp_path, inventory, fe.PUBLISH, extra, name="rerun")
    assert run.rc == 0, run
    report = [p for p in os.listdir(str(tmp_path)) if p.endswith(".json") and "faults_serving" in p]
    assert report, os.listdir(str(tmp_path))
    import json
    with open(os.path.join(str(tmp_path), report[0])) as handle:
        data = json.load(handle)
    assert data["inference"]["retcode"] == 0, data["inference"]
