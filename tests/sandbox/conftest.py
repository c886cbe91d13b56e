"""Fixtures for tests that run against the sandbox federation (docs/dev/sandbox.md).

    def test_something(sandbox, flow_post):
        fed = sandbox(source="1.6", destination="1.11", zookeeper=False, registry=False)
        reply = flow_post(fed["parties"]["9999"], "/v1/version/get", {"module": "FATE"})

`sandbox(...)` starts each distinct configuration once per test session (per pytest-xdist worker),
in its own temporary root whose path holds a space and a '#', on its own subnet and ports, and
returns a copy of its federation.json. Everything it started is stopped at the end of the session,
also when tests fail. `federation` is `sandbox()` with the defaults.
"""
import atexit
import copy
import fcntl
import json
import os
import socket
import subprocess
import sys

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX_DIR = os.path.join(REPO, "sandbox")
if SANDBOX_DIR not in sys.path:
    sys.path.insert(0, SANDBOX_DIR)

from fate_sandbox import profiles  # noqa: E402

_VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
PYTHON = _VENV_PYTHON if os.access(_VENV_PYTHON, os.X_OK) else sys.executable

# Ports: each configuration ("slot") gets a block of 50 ports (4 parties x 10, ZooKeeper at +45) and
# its own subnet 127.100.<10 + slot>. xdist worker w of W uses slots w, w + W, w + 2W, ..., skipping
# slots another session on this machine has locked (flock in /tmp/fate-sandbox-slots-<uid>/) or
# whose ports something already holds; everything stays below Linux's ephemeral port range (32768+).
PORT_BASE = int(os.environ.get("FATE_SANDBOX_TEST_PORT_BASE", "21000"))
SLOT_PORTS = 50
MAX_SLOTS = min(240, (32768 - PORT_BASE) // SLOT_PORTS)
START_TIMEOUT = 180
SERVICE_TIMEOUT = 60      # launcher --timeout: parallel workers on 2 cores start slowly
START_ATTEMPTS = 4


def worker_index():
    """0 without xdist, N for worker gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def launcher(*args, timeout=START_TIMEOUT):
    """Run `python -m fate_sandbox <args>`; returns the CompletedProcess (text, captured)."""
    env = dict(os.environ, PYTHONPATH=SANDBOX_DIR)
    return subprocess.run([PYTHON, "-m", "fate_sandbox"] + [str(a) for a in args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def worker_count():
    try:
        return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 1


def _slot_ports(slot):
    base = PORT_BASE + slot * SLOT_PORTS
    subnet = "127.100.%d" % (10 + slot)
    ports = [("%s.%d" % (subnet, i + 1), base + 10 * i + k) for i in range(4) for k in range(4)]
    ssh_ports = [("%s.%d" % (subnet, i + 1), base + 9) for i in range(4)]   # every party host's sshd
    return base, subnet, ports + ssh_ports + [("127.0.0.1", base + 45)]


SLOT_LOCK_DIR = os.path.join("/tmp", "fate-sandbox-slots-%d" % os.getuid())


def _lock_slot(slot):
    """An open file holding an exclusive flock on the slot (so that concurrent test sessions on this
    machine never pick the same slot), or None if another session holds it. Released when closed or
    when this process ends."""
    os.makedirs(SLOT_LOCK_DIR, exist_ok=True)
    handle = open(os.path.join(SLOT_LOCK_DIR, "%d.lock" % (PORT_BASE + slot * SLOT_PORTS)), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _in_use(host, port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class SlotAllocator:
    """Hands out (root, --base-port, --subnet, --zk-port) that no other sandbox of this run uses."""

    def __init__(self, basetemp):
        self.basetemp = basetemp
        self.worker = worker_index()
        self.step = worker_count()
        self.next_slot = self.worker
        self.roots = []         # every root handed out: stopped at session end
        self.locks = []         # flocks on the slots handed out, held for the whole session

    def allocate(self, name=None):
        """A fresh slot whose ports are free now; `name` replaces the root's last component
        (default "sand box#<slot>")."""
        while self.next_slot < MAX_SLOTS:
            slot = self.next_slot
            self.next_slot += self.step
            base, subnet, ports = _slot_ports(slot)
            lock = _lock_slot(slot)
            if lock is None:
                continue
            if any(_in_use(host, port) for host, port in ports):
                lock.close()
                continue
            self.locks.append(lock)
            # A space and a '#' in every root: proves the launcher, the scripts and the configs quote paths.
            root = os.path.join(str(self.basetemp), "sb", name or "sand box#%d" % slot)
            self.roots.append(root)
            return {"root": root, "base_port": base, "zk_port": base + 45, "subnet": subnet}
        raise RuntimeError("no free sandbox port block left below 32768 (from %d)" % PORT_BASE)

    def stop_all(self):
        """Stop every sandbox of this session that still runs, all at once."""
        env = dict(os.environ, PYTHONPATH=SANDBOX_DIR)
        running = [subprocess.Popen([PYTHON, "-m", "fate_sandbox", "stop", "--root", root], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
                   for root in self.roots if os.path.exists(os.path.join(root, "state.json"))]
        for proc in running:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for lock in self.locks:
            lock.close()
        self.locks = []

def start_args(slot, source="1.6", destination="1.11", zookeeper=False, registry=False, party_versions=None):
    args = ["start", "--root", slot["root"], "--source-version", source, "--destination-version", destination,
            "--base-port", slot["base_port"], "--subnet", slot["subnet"], "--zk-port", slot["zk_port"],
            "--timeout", SERVICE_TIMEOUT]
    for party_id, version in sorted((party_versions or {}).items()):
        args += ["--party-version", "%s=%s" % (party_id, version)]
    if zookeeper:
        args.append("--zookeeper")
    if registry:
        args.append("--registry")
    return args


def read_federation(root):
    with open(os.path.join(root, "federation.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def sandbox_slots(tmp_path_factory):
    """The session's slot allocator (for tests that start and stop a sandbox of their own)."""
    allocator = SlotAllocator(tmp_path_factory.getbasetemp())
    atexit.register(allocator.stop_all)      # in case the session ends without teardown
    try:
        yield allocator
    finally:
        allocator.stop_all()


@pytest.fixture(scope="session")
def sandbox(sandbox_slots):
    """Factory: sandbox(source="1.6", destination="1.11", zookeeper=False, registry=False,
    party_versions=None) -> federation.json (a copy) of a running sandbox of that configuration."""
    started = {}    # configuration key -> federation dict, or the error text of a failed start

    def factory(source="1.6", destination="1.11", zookeeper=False, registry=False, party_versions=None):
        source, destination = profiles.get(source).name, profiles.get(destination).name
        party_versions = {str(k): profiles.get(v).name for k, v in (party_versions or {}).items()}
        zookeeper = bool(zookeeper or registry)
        key = (source, destination, zookeeper, bool(registry), tuple(sorted(party_versions.items())))
        if key not in started:
            for _ in range(START_ATTEMPTS):
                slot = sandbox_slots.allocate()
                args = start_args(slot, source, destination, zookeeper, registry, party_versions)
                result = launcher(*args)
                if not (result.returncode == 1 and "in use" in result.stderr):
                    break       # else another session took these ports meanwhile: next slot
            if result.returncode != 0:
                started[key] = "sandbox %r failed to start (exit %d):\n%s\n%s" % (
                    key, result.returncode, result.stdout, result.stderr)
            else:
                fed = read_federation(slot["root"])
                factory.start_args[fed["root"]] = args
                factory.start_output[fed["root"]] = result.stdout
                started[key] = fed
        if isinstance(started[key], str):
            pytest.fail(started[key], pytrace=False)
        return copy.deepcopy(started[key])

    factory.start_args = {}       # root -> the launcher arguments that started it
    factory.start_output = {}     # root -> the launcher's stdout
    return factory


@pytest.fixture(scope="session")
def federation(sandbox):
    """federation.json of the default sandbox: source 1.6 (9999, 10000), destination 1.11 (99, 100)."""
    return sandbox()


_HTTP = requests.Session()
_HTTP.trust_env = False       # never through an HTTP proxy from the environment


def party_of(fed, party_id):
    return fed["parties"][str(party_id)]


def flow_post(party, path, json=None, **kwargs):
    """POST to a party's FATE Flow (party = an entry of federation.json's parties); returns the response."""
    kwargs.setdefault("timeout", 30)
    return _HTTP.post(party["flow_url"] + path, json=json, **kwargs)


@pytest.fixture(name="flow_post")
def _flow_post_fixture():
    """flow_post(party, path, json=None, **requests_kwargs) -> requests.Response."""
    return flow_post
