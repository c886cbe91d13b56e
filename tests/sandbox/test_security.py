"""Issue #7, security checks (docs/faults.md, "Security checks"), on a sandbox reached over SSH with every FATE Flow
and FATE-Serving on ZooKeeper (digest ACL) and request signing on the 1.11 FATE Flows:

* test_secrets_never_in_output_report_or_flow_logs: the serving link in ZooKeeper mode (a real run, and a check-mode
  run with --diff that would change the ZooKeeper section), migrate.yml with signed requests, then publish.yml
  (signing off again: FATE-Serving pulls the model unsigned) with the key still given, all at -vvv: neither the ZooKeeper password nor the FATE Flow secret key appears in the screen output, in the run
  report, or in what FATE Flow and FATE-Serving logged while they ran;
* test_check_mode_of_every_playbook_changes_nothing: every playbooks/*.yml in check mode: no byte changes in any
  FATE home or FATE-Serving home, no model row changes, no supervisord program or ZooKeeper pid changes;
* test_tls_certificates_checked_by_default: an https FATE Flow URL with a self-signed certificate (a TLS proxy in
  front of a sandbox FATE Flow) is refused with a clear message by default, and accepted with validate_certs=false
  or with the certificate as ca_path.
"""
import glob
import http.server
import json
import os
import re
import secrets
import ssl
import subprocess
import threading
import time

import pytest
import requests

import fault_env as fe
from pipeline_inventory import host_name

pytestmark = pytest.mark.timeout(900)

REGISTRY = dict(source="1.6", destination="1.11", registry=True)
SIGNED = ("99", "100")          # the 1.11 parties: request signing on


def _set_signing(party, app_key, secret_key):
    """Set (or clear) http_app_key/http_secret_key in a 1.11 party's service_conf.yaml, as an operator does."""
    path = party["config_files"][0]
    with open(path) as handle:
        text = handle.read()
    new = re.sub(r"(?m)^(  http_app_key:).*$", lambda m: m.group(1) + (" " + app_key if app_key else ""), text)
    new = re.sub(r"(?m)^(  http_secret_key:).*$", lambda m: m.group(1) + (" " + secret_key if secret_key else ""),
                 new)
    assert new != text or not app_key, "http_app_key/http_secret_key not found in %s" % path
    with open(path, "w") as handle:
        handle.write(new)


@pytest.fixture
def signing(sandbox):
    """The REGISTRY sandbox with signing on its 1.11 FATE Flows; (fed, app_key, secret_key, their original config
    bytes). Put back after."""
    fed = sandbox(**REGISTRY)
    app_key, secret_key = "fate-flow-app", "SecretKey%s" % secrets.token_hex(8)
    originals = dict((pid, fe.config_bytes(fed["parties"][pid])) for pid in SIGNED)
    try:
        for pid in SIGNED:
            _set_signing(fed["parties"][pid], app_key, secret_key)
            fe.restart_flow(fed, fed["parties"][pid], signed=True)
        unsigned = requests.post(fed["parties"]["99"]["flow_url"] + "/v1/server/version/get", json={}, timeout=10)
        assert unsigned.status_code == 401, "signing is on: an unsigned request is refused"
        yield fed, app_key, secret_key, originals
    finally:
        for pid in SIGNED:
            fe.put_back(fed, fed["parties"][pid], originals[pid])


def _log_sizes(fed):
    """{path: size} of every log file of every FATE Flow and FATE-Serving."""
    sizes = {}
    for party in fed["parties"].values():
        for directory in (party["log_dir"], party["serving"]["log_dir"]):
            for path in glob.glob(os.path.join(glob.escape(directory), "*")):
                if os.path.isfile(path):
                    sizes[path] = os.path.getsize(path)
    return sizes


def _logged_since(sizes, fed):
    """{path: text} each log file gained since `sizes` was taken."""
    gained = {}
    for path, size in _log_sizes(fed).items():
        with open(path, "rb") as handle:
            handle.seek(sizes.get(path, 0))
            gained[path] = handle.read().decode("utf-8", "replace")
    return gained


def test_secrets_never_in_output_report_or_flow_logs(signing, tmp_path):
    fed, app_key, secret_key, originals = signing
    zk = fed["zookeeper"]
    zk_password = zk["password"]
    host_vars = {}
    for pid in fed["parties"]:
        host_vars[pid] = {"fate_zookeeper_hosts": ",".join(zk["hosts"]), "fate_zookeeper_use_acl": True,
                          "fate_zookeeper_user": zk["user"], "fate_zookeeper_password": zk_password}
        if pid in SIGNED:
            host_vars[pid].update(fate_flow_app_key=app_key, fate_flow_secret_key=secret_key)
    inventory = fe.inventory(fed, tmp_path / "inventory", **host_vars)
    report_dir = tmp_path / "reports"
    version = "secure_%d" % int(time.time())
    extra = {"fate_unify_model_version": version, "fate_report_dir": str(report_dir), "fate_restart_timeout": 60}
    sizes = _log_sizes(fed)
    runs = []
    # The serving link in ZooKeeper mode, for real (the 1.11 parties are on ZooKeeper already: verified, no change)
    runs.append(fe.run(tmp_path, inventory, fe.LINK_SERVING, extra, verbosity=3, name="link"))
    assert runs[-1].rc == 0, runs[-1]
    assert "Registered servings" in runs[-1].output
    # ... and in check mode with --diff for a change of the ZooKeeper section: the diff masks the password
    changed_zk = dict(host_vars)
    for pid in SIGNED:
        changed_zk[pid] = dict(host_vars[pid], fate_zookeeper_hosts=",".join(zk["hosts"] * 2))
    check_inventory = fe.inventory(fed, tmp_path / "inventory-check", **changed_zk)
    runs.append(fe.run(tmp_path, check_inventory, fe.LINK_SERVING, extra, check=True, diff=True, verbosity=3,
                       name="link-check"))
    assert runs[-1].rc == 0, runs[-1]
    assert "password: ********" in runs[-1].output, "the check-mode diff of the ZooKeeper section is shown, masked"
    assert "http_secret_key: ********" in runs[-1].output, "the diff masks the request-signing key too"
    # The migration with signed requests to the 1.11 FATE Flows (pre-flight, migrate, transfer, import)
    runs.append(fe.run(tmp_path, inventory, fe.MIGRATE, extra, verbosity=3, name="migrate"))
    assert runs[-1].rc == 0, runs[-1]
    # ... then the publish step with the same secret key given to every fate.flow module. FATE-Serving pulls the
    # model from FATE Flow's /v1/model/transfer unsigned, so the sandbox's 1.11 FATE Flows stop checking
    # signatures for it (the key still goes to every module, where it must not leak).
    for pid in SIGNED:
        fe.put_back(fed, fed["parties"][pid], originals[pid])
    runs.append(fe.run(tmp_path, inventory, fe.PUBLISH, extra, verbosity=3, name="publish"))
    assert runs[-1].rc == 0, runs[-1]
    reports = sorted(glob.glob(os.path.join(glob.escape(str(report_dir)), "*")))
    assert [os.path.splitext(p)[1] for p in reports if version in p] == [".json", ".txt"], reports
    with open([p for p in reports if p.endswith(".json") and version in p][0]) as handle:
        assert json.load(handle)["inference"]["retcode"] == 0
    logged = _logged_since(sizes, fed)
    flow_log = "".join(text for path, text in logged.items() if path.endswith("fate_flow_stat.log"))
    assert "/v1/model/migrate" in flow_log and "/v1/model/load" in flow_log, "the access logs saw our requests"
    for secret, what in ((zk_password, "the ZooKeeper password"), (secret_key, "the FATE Flow secret key")):
        for run in runs:
            assert secret not in run.output, "%s in the output of %s" % (what, run.args)
        for path in reports:
            with open(path) as handle:
                assert secret not in handle.read(), "%s in the report %s" % (what, path)
        for path, text in logged.items():
            assert secret not in text, "%s in %s" % (what, path)


def _imported_by(playbook):
    """Names of the playbooks `playbook` imports (ansible.builtin.import_playbook: <name>)."""
    with open(playbook) as handle:
        return set(re.findall(r"(?m)^\s+ansible\.builtin\.import_playbook:\s*([\w.-]+\.yml)\s*$", handle.read()))


def test_check_mode_of_every_playbook_changes_nothing(sandbox, tmp_path):
    fed = sandbox(**REGISTRY)
    playbooks = sorted(glob.glob(os.path.join(glob.escape(fe.PLAYBOOKS), "*.yml")))
    assert {"migrate.yml", "publish.yml", "pipeline.yml", "report.yml"} <= set(map(os.path.basename, playbooks))
    # pipeline.yml runs migrate.yml, link_serving.yml, publish.yml and report.yml as they are: one check run of it
    # covers them (lean); every other playbook gets its own
    covered = _imported_by(fe.PIPELINE)
    assert {"migrate.yml", "link_serving.yml", "publish.yml"} <= covered, covered
    playbooks = [p for p in playbooks if os.path.basename(p) not in covered]
    # Mode A for the destination parties (they are on ZooKeeper): the serving link would change and restart
    servings = dict((pid, {"fate_servings": p["serving"]["grpc_address"]}) for pid, p in fed["parties"].items()
                    if p["cluster"] == "destination")
    inventory = fe.inventory(fed, tmp_path / "inventory", **servings)
    extra = {"fate_unify_model_version": "check_%d" % int(time.time()), "fate_report_dir": str(tmp_path / "reports")}
    before = fe.state(fed)
    outcomes = {}
    for playbook in playbooks:
        name = os.path.splitext(os.path.basename(playbook))[0]
        run = fe.run(tmp_path, inventory, playbook, extra, check=True, name=name)
        outcomes[name] = run
        assert run.rc == 0, run
        assert fe.diff_state(before, fe.state(fed)) == [], "check mode of %s changed something" % playbook
    # the check run reports the serving link change it would make
    assert outcomes["pipeline"].task("Set the serving link in FATE Flow's config", host="party99")["status"] == \
        "changed", outcomes["pipeline"].output[-3000:]
    assert not os.path.exists(tmp_path / "reports") or not os.listdir(tmp_path / "reports")


# ------------------------------------------------------------------------------------------------ TLS

def _self_signed(directory, address):
    cert, key = os.path.join(directory, "flow.crt"), os.path.join(directory, "flow.key")
    proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                           "-subj", "/CN=%s" % address, "-addext", "subjectAltName=IP:%s" % address,
                           "-keyout", key, "-out", cert], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return cert, key


class _TlsProxy(object):
    """https://<address>:<port> with a self-signed certificate, relaying every request to a FATE Flow."""

    def __init__(self, address, cert, key, target):
        session = requests.Session()
        session.trust_env = False

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length"))
                reply = session.request(self.command, target + self.path, data=body, headers=headers, timeout=30)
                self.send_response(reply.status_code)
                self.send_header("Content-Type", reply.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://%s:%d" % (address, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_tls_certificates_checked_by_default(sandbox, tmp_path):
    fed = sandbox(**REGISTRY)
    party = fed["parties"]["9999"]
    cert, key = _self_signed(str(tmp_path), "127.0.0.1")
    inventory = fe.inventory(fed, tmp_path / "inventory")
    with _TlsProxy("127.0.0.1", cert, key, party["flow_url"]) as proxy:
        tasks = [
            {"name": "Default", "fate.flow.flow_info": {"flow_url": proxy.url, "retries": 0}, "ignore_errors": True},
            {"name": "Model lookup by default", "ignore_errors": True, "fate.flow.model_info": {
                "flow_url": proxy.url, "retries": 0, "model_id": fed["model"]["model_id"],
                "model_version": fed["model"]["deployed_version"]}},
            {"name": "Not validated", "fate.flow.flow_info": {"flow_url": proxy.url, "validate_certs": False}},
            {"name": "With the CA", "fate.flow.flow_info": {"flow_url": proxy.url, "ca_path": cert}},
            {"name": "Model lookup with the CA", "fate.flow.model_info": {
                "flow_url": proxy.url, "ca_path": cert, "model_id": fed["model"]["model_id"],
                "model_version": fed["model"]["deployed_version"]}},
        ]
        path = tmp_path / "tls.yml"
        path.write_text(json.dumps([{"name": "TLS", "hosts": host_name("9999"), "gather_facts": False,
                                     "tasks": tasks}]))
        run = fe.run(tmp_path, inventory, str(path), name="tls")
    assert run.rc == 0, run
    for name in ("Default", "Model lookup by default"):
        entry = run.task(name)
        msg = entry["result"]["msg"]
        assert entry["status"] == "failed", entry
        assert proxy.url in msg and "certificate" in msg.lower(), msg
        assert "ca_path" in msg and "validate_certs" in msg, "the message says what to do: %s" % msg
    for name in ("Not validated", "With the CA"):
        result = run.result(name)
        assert result["healthy"] is True and result["fate_version"].startswith("1.6"), result
    assert run.result("Model lookup with the CA")["exists"] is True
