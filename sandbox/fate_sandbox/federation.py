"""The sandbox federation: its layout on disk, the files each party's services read, and its processes.

start() writes, under a root directory, a FATE home and a FATE-Serving home per party (shaped like
real installs of the party's version), one supervisord per party running `fate-fateflow` and
`fate-serving-server`, and optionally a real ZooKeeper with FATE's ACL'd root nodes; then it waits
until every service answers and writes federation.json (what tests and playbooks read) and
state.json (the pids it started, which stop() ends and nothing else). See docs/dev/sandbox.md.
"""
import contextlib
import dataclasses
import datetime
import fcntl
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import xmlrpc.client

from fate_sandbox import conf_templates as T
from fate_sandbox import model_store, profiles, zk
from fate_sandbox import ssh as sandbox_ssh

SANDBOX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # on the emulators' PYTHONPATH
REPO = os.path.dirname(SANDBOX_DIR)
DEFAULT_ROOT = os.path.join(REPO, ".sandbox")

# party id, cluster, job roles: the federation of FATE's migration guide, in port/address order.
PARTIES = (
    ("9999", "source", ("guest",)),
    ("10000", "source", ("host", "arbiter")),
    ("99", "destination", ("guest",)),
    ("100", "destination", ("host", "arbiter")),
)
# --pairs N: N source parties (9999, 10000, ...) then N destination parties (99, 100, ...); the default
# federation above is the 2-pair one.
DEFAULT_PAIRS = 2
MAX_PAIRS = 100
SOURCE_FIRST_ID = 9999
DESTINATION_FIRST_ID = 99
FLOW_PROGRAM = "fate-fateflow"
SERVING_PROGRAM = "fate-serving-server"
ZK_ADDRESS = "127.0.0.1"
ZK_USER = zk.USER

# Port offsets within a party's block of 10.
FLOW_HTTP, FLOW_GRPC, SERVING_GRPC, SERVING_PROXY = range(4)
# Every party host's sshd listens on its own address at base port + SSH_PORT_OFFSET (the first block's last
# port: the same number on every address, as port 22 would be on real hosts).
SSH_PORT_OFFSET = 9

FEDERATION_FILE = "federation.json"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"


class SandboxError(Exception):
    """Something the user should read: a port in use, a service that did not come up, ..."""


def party_layout(pairs=DEFAULT_PAIRS):
    """(party id, cluster, job roles) of a federation of `pairs` source and `pairs` destination parties.

    In each cluster the guest is the first party and every other party is a host; the arbiter is the second party
    (the first host). One pair puts guest, host and arbiter on one party per cluster. Two pairs is PARTIES.
    """
    if pairs == DEFAULT_PAIRS:
        return PARTIES
    out = []
    for cluster, first in (("source", SOURCE_FIRST_ID), ("destination", DESTINATION_FIRST_ID)):
        for index in range(pairs):
            if pairs == 1:
                roles = ("guest", "host", "arbiter")
            elif index == 0:
                roles = ("guest",)
            elif index == 1:
                roles = ("host", "arbiter")
            else:
                roles = ("host",)
            out.append((str(first + index), cluster, roles))
    return tuple(out)


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    """Bytes of a size like 1G, 100M, 512MiB, 4GB (binary units) or 1048576; 0 and '' mean none."""
    if isinstance(text, int):
        size = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text or "0"), re.IGNORECASE)
        if not m:
            raise SandboxError("--model-size: expected a size like 100M, 1G or 4G (got %r)" % (text,))
        size = int(m.group(1)) * SIZE_UNITS[m.group(2).upper()]
    if size < 0:
        raise SandboxError("--model-size may not be negative")
    return size


# --------------------------------------------------------------------------------------------
# options and the plan (pure: no side effects)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Options:
    root: str = DEFAULT_ROOT
    source_version: str = "1.6"
    destination_version: str = "1.11"
    party_versions: dict = dataclasses.field(default_factory=dict)   # {"9999": "1.4"}
    zookeeper: bool = False
    registry: bool = False
    base_port: int = 19380
    subnet: str = "127.0.10"
    zk_port: int = 12181
    keep_data: bool = False
    timeout: float = 20.0
    ssh: bool = True          # one sshd per party address: the party hosts are reached over real SSH
    pairs: int = DEFAULT_PAIRS  # source/destination party pairs (party_layout)
    model_size: int = 0       # bytes of the payload file added to the deployed model (0: none); "1G" works too
    model_size_parties: list = dataclasses.field(default_factory=list)   # source parties with it ([]: all)

    def __post_init__(self):
        self.root = os.path.abspath(os.path.expanduser(self.root))
        self.source_version = _profile(self.source_version).name
        self.destination_version = _profile(self.destination_version).name
        try:
            self.pairs = int(self.pairs if self.pairs is not None else DEFAULT_PAIRS)
        except (TypeError, ValueError):
            raise SandboxError("--pairs must be a number from 1 to %d (got %r)" % (MAX_PAIRS, self.pairs)) from None
        if not 1 <= self.pairs <= MAX_PAIRS:
            raise SandboxError("--pairs must be from 1 to %d (got %d)" % (MAX_PAIRS, self.pairs))
        layout = self.layout()
        known = {p[0] for p in layout}
        versions = {}
        for party_id, version in dict(self.party_versions or {}).items():
            party_id = str(party_id)
            if party_id not in known:
                raise SandboxError("--party-version: unknown party %s (parties: %s)"
                                   % (party_id, ", ".join(p[0] for p in layout)))
            versions[party_id] = _profile(version).name
        self.party_versions = versions
        self.model_size = parse_size(self.model_size)
        sources = [p[0] for p in layout if p[1] == "source"]
        chosen = []
        for party_id in self.model_size_parties or []:
            party_id = str(party_id)
            if party_id not in sources:
                raise SandboxError("--model-size-party: %s is not a source party (source parties: %s)"
                                   % (party_id, ", ".join(sources)))
            if party_id not in chosen:
                chosen.append(party_id)
        if chosen and not self.model_size:
            raise SandboxError("--model-size-party needs --model-size")
        self.model_size_parties = [p for p in sources if p in chosen] if chosen else []
        if self.registry:
            self.zookeeper = True
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", self.subnet) or \
                any(int(x) > 255 for x in self.subnet.split(".")):
            raise SandboxError("--subnet must be three octets in 127.0.0.0/8, like 127.0.10 (got %r)"
                               % self.subnet)
        for name, port, span in (("--base-port", self.base_port, 10 * len(layout)),
                                 ("--zk-port", self.zk_port, 1)):
            if not (1024 <= port and port + span <= 65536):
                raise SandboxError("%s %d is out of range" % (name, port))
        for ch in ("\n", "\r", '"', "\\"):
            if ch in self.root:
                raise SandboxError("the sandbox root may not contain %r: %s" % (ch, self.root))

    def layout(self):
        return party_layout(self.pairs)

    def payload_parties(self):
        """The source parties whose deployed model carries the --model-size payload."""
        if not self.model_size:
            return []
        return self.model_size_parties or [p[0] for p in self.layout() if p[1] == "source"]

    def version_of(self, party_id, cluster):
        return self.party_versions.get(party_id) or (
            self.source_version if cluster == "source" else self.destination_version)

    def key(self):
        """The options that decide what runs (compared to warn when a start asks for something else)."""
        key = {"source_version": self.source_version, "destination_version": self.destination_version,
               "party_versions": dict(sorted(self.party_versions.items())), "zookeeper": self.zookeeper,
               "registry": self.registry, "base_port": self.base_port, "subnet": self.subnet,
               "zk_port": self.zk_port if self.zookeeper else None, "ssh": self.ssh}
        # Only when not the default, so the default federation.json/state.json keep their shape.
        if self.pairs != DEFAULT_PAIRS:
            key["pairs"] = self.pairs
        if self.model_size:
            key["model_size"] = self.model_size
            key["model_size_parties"] = self.payload_parties()
        return key


def _user():
    import getpass
    return getpass.getuser()


def _profile(version):
    try:
        return profiles.get(version)
    except KeyError as exc:
        raise SandboxError(exc.args[0]) from None


# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107


def _short_socket_dir(root):
    """Where supervisor sockets go when <root>/parties/<id>/supervisor/ is too deep for a unix socket."""
    import hashlib
    digest = hashlib.sha1(root.encode()).hexdigest()[:12]
    return os.path.join("/tmp", "fate-sandbox-%d-%s" % (os.getuid(), digest))


def python_executable():
    return sys.executable


def venv_tool(name):
    candidate = os.path.join(os.path.dirname(python_executable()), name)
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if not found:
        raise SandboxError("%s not found next to %s nor on PATH (pip install supervisor)"
                           % (name, python_executable()))
    return found


def plan(options, zk_password=""):
    """federation.json's content for these options (paths, addresses, ports); writes nothing."""
    root = options.root
    zk_hosts = ["%s:%d" % (ZK_ADDRESS, options.zk_port)] if options.zookeeper else []
    parties = {}
    layout = options.layout()
    for index, (party_id, cluster, roles) in enumerate(layout):
        version = options.version_of(party_id, cluster)
        profile = profiles.get(version)
        address = "%s.%d" % (options.subnet, index + 1)
        port = options.base_port + 10 * index
        party_dir = os.path.join(root, "parties", party_id)
        home = os.path.join(party_dir, "fate")
        serving_home = os.path.join(party_dir, "serving")
        sv_dir = os.path.join(party_dir, "supervisor")
        sv_socket = os.path.join(sv_dir, "supervisor.sock")
        if len(sv_socket.encode()) > MAX_SOCKET_PATH:
            sv_socket = os.path.join(_short_socket_dir(root), "%s.sock" % party_id)
        log_dir = os.path.join(home, profile.logs_dir, "fate_flow")
        flow_url = "http://%s:%d" % (address, port + FLOW_HTTP)
        ssh_root = os.path.join(root, "ssh")
        parties[party_id] = {
            "party_id": party_id, "cluster": cluster, "roles": list(roles), "version": profile.name,
            "fate_version": profile.fate_version, "flow_version": profile.flow_version,
            "address": address, "flow_url": flow_url,
            "flow_http_port": port + FLOW_HTTP, "flow_grpc_port": port + FLOW_GRPC,
            "version_path": "/v1/version/get" if profile.has_version_get else "/v1/server/version/get",
            "fate_home": home,
            "config_files": [os.path.join(home, f) for f in profile.conf_files],
            "fate_env": os.path.join(home, "fate.env") if profile.has_fate_env else None,
            "route_table": os.path.join(home, "eggroll", "conf", "route_table.json"),
            "service_script": os.path.join(home, profile.service_script),
            "model_local_cache": os.path.join(home, profile.model_local_cache),
            "temp_dir": os.path.join(home, profile.temp_dir),
            "log_dir": log_dir,
            # How Ansible reaches this party's host (None: --no-ssh). ssh_common_args holds the known_hosts path
            # double-quoted for ssh's own parser, so a root with spaces works.
            "ssh": {
                "host": address, "port": options.base_port + SSH_PORT_OFFSET, "user": _user(),
                "private_key": os.path.join(ssh_root, "client_key"),
                "known_hosts": os.path.join(ssh_root, "known_hosts"),
                "ssh_common_args": sandbox_ssh.common_args(os.path.join(ssh_root, "known_hosts")),
            } if options.ssh else None,
            "supervisor": {
                "config": os.path.join(sv_dir, "supervisord.conf"),
                "server_url": "unix://" + sv_socket,
                "socket": sv_socket,
                "pid_file": os.path.join(sv_dir, "supervisord.pid"),
                "log_file": os.path.join(sv_dir, "supervisord.log"),
                "flow_program": FLOW_PROGRAM, "serving_program": SERVING_PROGRAM,
            },
            "serving": {
                "home": serving_home, "address": address,
                "grpc_port": port + SERVING_GRPC, "proxy_port": port + SERVING_PROXY,
                "grpc_address": "%s:%d" % (address, port + SERVING_GRPC),
                "proxy_url": "http://%s:%d" % (address, port + SERVING_PROXY),
                "inference_url": "http://%s:%d/federation/v1/inference" % (address, port + SERVING_PROXY),
                "config_file": os.path.join(serving_home, "conf", "serving-server.properties"),
                "route_table": os.path.join(serving_home, "conf", "route_table.json"),
                "log_dir": os.path.join(serving_home, "logs"),
            },
        }
    ids = {cluster: [p for p, c, _ in layout if c == cluster] for cluster in ("source", "destination")}

    def role_map(cluster):
        out = {}
        for party_id, c, roles in layout:
            if c == cluster:
                for role in roles:
                    out.setdefault(role, []).append(int(party_id))
        return out

    return {
        "root": root,
        "python": python_executable(),
        "sandbox_path": SANDBOX_DIR,
        "supervisorctl": venv_tool("supervisorctl"),
        "use_registry": options.registry,
        "zookeeper": {"enabled": options.zookeeper, "hosts": zk_hosts, "use_acl": options.zookeeper,
                      "user": ZK_USER if options.zookeeper else "",
                      "password": zk_password if options.zookeeper else "",
                      "port": options.zk_port if options.zookeeper else None,
                      "root_nodes": list(zk.ROOTS) if options.zookeeper else []},
        "model": _model_entry(options, role_map("source")),
        "clusters": {"source": {"version": options.source_version, "parties": ids["source"]},
                     "destination": {"version": options.destination_version, "parties": ids["destination"]}},
        "migration": {"role": role_map("source"), "migrate_role": role_map("destination")},
        "parties": parties,
        "options": options.key(),
    }


def _model_entry(options, roles):
    model = {"model_id": model_store.gen_model_id(roles),
             "trained_version": model_store.TRAINED_VERSION,
             "deployed_version": model_store.DEPLOYED_VERSION,
             "roles": roles}
    if options.model_size:
        # Only with --model-size: the default federation.json keeps its shape.
        model["payload"] = {"size": options.model_size, "parties": options.payload_parties(),
                            "path": model_store.PAYLOAD_PATH}
    return model


# --------------------------------------------------------------------------------------------
# writing the homes
# --------------------------------------------------------------------------------------------

def _write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_json(path, data):
    _write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SandboxError("%s is not valid JSON: %s" % (path, exc))


def flow_config_text(fed, party):
    """{relative config path: text} of a party's FATE Flow config file(s)."""
    profile = profiles.get(party["version"])
    zk_conf = fed["zookeeper"]
    if zk_conf["enabled"]:
        zk_hosts, use_acl, user, password = zk_conf["hosts"], True, zk_conf["user"], zk_conf["password"]
    else:   # what FATE ships: a local ensemble, no ACL; unused while use_registry is false
        zk_hosts, use_acl, user, password = ["127.0.0.1:2181"], False, "fate", "fate"
    servings = [party["serving"]["grpc_address"]]
    values = dict(use_registry=T.yaml_bool(fed["use_registry"]), host=party["address"],
                  http_port=party["flow_http_port"], grpc_port=party["flow_grpc_port"],
                  zk_hosts=T.yaml_list(zk_hosts, 4), use_acl=T.yaml_bool(use_acl), zk_user=user,
                  zk_password=password, servings=T.yaml_list(servings, 4), party_id=party["party_id"])
    if profile.name == "1.4":
        return {
            "arch/conf/server_conf.json": T.server_conf_14(party["address"], party["flow_http_port"],
                                                           party["flow_grpc_port"], servings),
            "arch/conf/base_conf.yaml": T.render(T.BASE_CONF_14, **values),
        }
    template = {"1.6": T.SERVICE_CONF_16, "1.8": T.SERVICE_CONF_18, "1.11": T.SERVICE_CONF_111}[profile.name]
    return {"conf/service_conf.yaml": T.render(template, **values)}


def flow_route_table(fed):
    table = {pid: {"fateflow": [{"ip": p["address"], "port": p["flow_http_port"]}]}
             for pid, p in fed["parties"].items()}
    return {"route_table": table, "permission": {"default_allow": True}}


def serving_route_table(fed, party_id):
    table = {pid: {"default": [{"ip": p["serving"]["address"], "port": p["serving"]["proxy_port"]}]}
             for pid, p in fed["parties"].items() if pid != party_id}
    return {"route_table": table, "permission": {"default_allow": True}}


def serving_properties_text(fed, party):
    zk_conf = fed["zookeeper"]
    enabled = zk_conf["enabled"]
    return T.render(
        T.SERVING_PROPERTIES, party_id=party["party_id"], ip=party["serving"]["address"],
        port=party["serving"]["grpc_port"], proxy_port=party["serving"]["proxy_port"],
        transfer_url=party["flow_url"] + "/v1/model/transfer",
        zk_url=",".join(zk_conf["hosts"]) if enabled else "",
        use_register=T.yaml_bool(enabled), acl_enable=T.yaml_bool(enabled),
        acl_username=zk_conf["user"] if enabled else "", acl_password=zk_conf["password"] if enabled else "")


def _sv_path(path, here, expansions=1):
    """A path as a supervisord config value: '%' escaped for each %-expansion supervisord applies
    to the key (two for stdout_logfile/stderr_logfile, one elsewhere), and written relative to
    %(here)s when a ';' or '#' after whitespace would otherwise start an inline comment."""
    escape = "%" * (2 ** expansions)
    if re.search(r"\s[;#]", path):
        rel = os.path.relpath(path, here)
        if re.search(r"\s[;#]", rel) or "%" in here:
            # supervisord would cut the value at the comment, or choke on the '%' %(here)s brings in
            raise SandboxError("cannot write %r into a supervisord config: whitespace before ';' or '#' "
                               "together with '%%' in the path" % path)
        return "%(here)s/" + rel.replace("%", escape)
    return path.replace("%", escape)


def _sv_arg(path, here):
    """A path as one double-quoted word of a supervisord `command`."""
    return '"%s"' % _sv_path(path, here).replace("\\", "\\\\").replace('"', '\\"')


def supervisord_conf_text(fed, party):
    sv = party["supervisor"]
    here = os.path.dirname(sv["config"])
    p = lambda path: _sv_path(path, here)      # noqa: E731
    log = lambda path: _sv_path(path, here, 2)  # noqa: E731
    a = lambda path: _sv_arg(path, here)       # noqa: E731
    serving = party["serving"]
    lines = [
        "; supervisord of sandbox party %s (%s cluster, FATE %s), written by fate_sandbox"
        % (party["party_id"], party["cluster"], party["fate_version"]),
        "",
        "[unix_http_server]",
        "file=%s" % p(sv["socket"]),
        "chmod=0700",
        "",
        "[supervisord]",
        "logfile=%s" % p(sv["log_file"]),
        "logfile_maxbytes=10MB",
        "logfile_backups=2",
        "loglevel=info",
        "pidfile=%s" % p(sv["pid_file"]),
        "nodaemon=false",
        "minfds=1024",
        "minprocs=200",
        "directory=%s" % p(here),
        "childlogdir=%s" % p(here),
        "identifier=fate-sandbox-%s" % party["party_id"],
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        "serverurl=unix://%s" % p(sv["socket"]),
        "",
        "[program:%s]" % FLOW_PROGRAM,
        "command=/bin/bash %s starting" % a(party["service_script"]),
        "directory=%s" % p(party["fate_home"]),
        "autostart=true",
        "autorestart=true",
        "startsecs=2",
        "startretries=3",
        "stopsignal=TERM",
        "stopwaitsecs=10",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=false",
        "stdout_logfile=%s" % log(os.path.join(party["log_dir"], "console.log")),
        "stdout_logfile_maxbytes=50MB",
        "stdout_logfile_backups=2",
        "stderr_logfile=%s" % log(os.path.join(party["log_dir"], "error.log")),
        "stderr_logfile_maxbytes=50MB",
        "stderr_logfile_backups=2",
        "",
        "[program:%s]" % SERVING_PROGRAM,
        "command=%s -m fate_sandbox.serving --home %s" % (a(fed["python"]), a(serving["home"])),
        "directory=%s" % p(serving["home"]),
        'environment=PYTHONPATH="%s"' % p(fed["sandbox_path"]).replace('"', '\\"'),
        "autostart=true",
        "autorestart=true",
        "startsecs=2",
        "startretries=3",
        "stopsignal=TERM",
        "stopwaitsecs=10",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=false",
        "stdout_logfile=%s" % log(os.path.join(serving["log_dir"], "console.log")),
        "stdout_logfile_maxbytes=50MB",
        "stdout_logfile_backups=2",
        "stderr_logfile=%s" % log(os.path.join(serving["log_dir"], "error.log")),
        "stderr_logfile_maxbytes=50MB",
        "stderr_logfile_backups=2",
        "",
    ]
    return "\n".join(lines)


def service_script_text(fed, party):
    profile = profiles.get(party["version"])
    q = shlex.quote
    return T.render(
        T.SERVICE_SH, home_q=q(party["fate_home"]), profile_q=q(profile.name), python_q=q(fed["python"]),
        conf_q=q(party["config_files"][-1]), section_q=q("fate_flow" if profile.name == "1.4" else "fateflow"),
        log_dir_q=q(party["log_dir"]), host_q=q(party["address"]), http_port=party["flow_http_port"],
        grpc_port=party["flow_grpc_port"], sandbox_q=q(fed["sandbox_path"]))


def write_party(fed, party, seed=True):
    """Write one party's FATE home, serving home and supervisord config (and seed its models)."""
    profile = profiles.get(party["version"])
    home = party["fate_home"]
    for rel, text in flow_config_text(fed, party).items():
        _write(os.path.join(home, rel), text)
    if party["fate_env"]:
        c = T.FATE_ENV_COMPONENTS[profile.name]
        _write(party["fate_env"], T.render(T.FATE_ENV, fate=profile.fate_version, flow=profile.flow_version, **c))
    _write_json(party["route_table"], flow_route_table(fed))
    _write(os.path.join(home, "bin", "init_env.sh"),
           T.render(T.INIT_ENV, home_q=shlex.quote(home), sandbox_q=shlex.quote(fed["sandbox_path"]),
                    venv_q=shlex.quote(os.path.dirname(os.path.dirname(fed["python"])))), 0o755)
    _write(party["service_script"], service_script_text(fed, party), 0o755)
    for path in (party["model_local_cache"], party["temp_dir"], party["log_dir"]):
        os.makedirs(path, exist_ok=True)

    serving = party["serving"]
    _write(serving["config_file"], serving_properties_text(fed, party))
    _write_json(serving["route_table"], serving_route_table(fed, party["party_id"]))
    os.makedirs(serving["log_dir"], exist_ok=True)

    sv = party["supervisor"]
    os.makedirs(os.path.dirname(sv["socket"]), mode=0o700, exist_ok=True)
    _write(sv["config"], supervisord_conf_text(fed, party))

    if seed and party["cluster"] == "source":
        model = fed["model"]
        payload = model.get("payload") or {}
        for index, role in enumerate(party["roles"]):
            # The payload goes into the party's first job role only: one large archive per source party.
            size = payload.get("size", 0) if index == 0 and party["party_id"] in payload.get("parties", []) else 0
            model_store.seed_guide_model(home, profile, role, int(party["party_id"]), roles=model["roles"],
                                         payload_size=size)


def prepare(options, zk_password=None, seed=True):
    """Write every file of the sandbox (no process started); returns the federation dict."""
    fed = plan(options, zk_password if zk_password is not None else new_password())
    for party in fed["parties"].values():
        write_party(fed, party, seed=seed)
    return fed


def new_password(length=20):
    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(length - 1))


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------

def pid_alive(pid):
    """Running (a zombie counts as gone: it lingers until its parent reaps it)."""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError, ValueError):
        return False


def pid_argv(pid):
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (OSError, ValueError):
        return []


def is_our_supervisord(pid, config):
    argv = pid_argv(pid)
    return pid_alive(pid) and any("supervisord" in a for a in argv[:3]) and config in argv


def is_our_program(pid):
    return pid_alive(pid) and any(a.startswith("fate_sandbox.") or "fate_sandbox" in a for a in pid_argv(pid))


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(host, port):
    """'pid N (cmd)' of a listener, best effort (ss)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.splitlines():
        if host in line or "*:%d" % port in line or "0.0.0.0:%d" % port in line:
            m = re.search(r'\("([^"]*)",pid=(\d+)', line)
            if m:
                return "pid %s (%s)" % (m.group(2), m.group(1))
    return ""


def http_status(url, path, method="POST", timeout=1.0):
    """The HTTP status a request gets, or None when nothing HTTP answers."""
    m = re.match(r"http://([^:/]+):(\d+)", url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    try:
        if method == "POST":
            conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
        else:
            conn.request(method, path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def http_answers(url, path, timeout=1.0):
    """Whether anything HTTP answers a POST (any status counts: the server is up)."""
    return http_status(url, path, "POST", timeout) is not None


def supervisor_rpc(socket_path):
    from supervisor.xmlrpc import SupervisorTransport
    return xmlrpc.client.ServerProxy("http://127.0.0.1",
                                     transport=SupervisorTransport(None, None, "unix://" + socket_path))


def program_info(socket_path):
    """{program: {statename, pid, ...}} from a running supervisord, {} if it does not answer."""
    try:
        return {info["name"]: info for info in supervisor_rpc(socket_path).supervisor.getAllProcessInfo()}
    except Exception:   # noqa: BLE001 - any failure means "no answer"
        return {}


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            content = f.readlines()[-lines:]
    except OSError:
        return "    (%s: missing)\n" % path
    if not content:
        return "    (%s: empty)\n" % path
    return "    --- %s\n%s" % (path, "".join("    " + line for line in content))


def start_supervisord(party, env):
    sv = party["supervisor"]
    for stale in (sv["pid_file"], sv["socket"]):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    out_path = os.path.join(os.path.dirname(sv["config"]), "supervisord.out")
    with open(out_path, "ab") as out, open(os.devnull, "rb") as devnull:
        result = subprocess.run([venv_tool("supervisord"), "-c", sv["config"]], stdin=devnull, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=os.path.dirname(sv["config"]),
                                start_new_session=True, timeout=30)
    if result.returncode != 0:
        raise SandboxError("supervisord of party %s failed to start (exit %d):\n%s"
                           % (party["party_id"], result.returncode, tail(out_path)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(sv["pid_file"]) as f:
                pid = int(f.read().strip() or 0)
            if pid and pid_alive(pid):
                return pid
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise SandboxError("supervisord of party %s wrote no pid file %s:\n%s%s"
                       % (party["party_id"], sv["pid_file"], tail(out_path), tail(sv["log_file"])))


def party_ports(party):
    return [(party["address"], party["flow_http_port"]), (party["address"], party["flow_grpc_port"]),
            (party["address"], party["serving"]["grpc_port"]), (party["address"], party["serving"]["proxy_port"])]


def party_health(party):
    """{"flow": bool, "serving": bool}: FATE Flow answers HTTP (any status), the serving emulator's
    proxy answers GET /health with 200 and its gRPC port accepts connections."""
    serving = party["serving"]
    return {
        "flow": http_answers(party["flow_url"], party["version_path"]),
        "serving": http_status(serving["proxy_url"], "/health", "GET") == 200
        and port_open(serving["address"], serving["grpc_port"]),
    }


def _wait_up(fed, state, timeout, out):
    pending = dict(fed["parties"])
    deadline = time.monotonic() + timeout
    next_rpc = 0.0
    while pending:
        for party_id, party in list(pending.items()):
            health = party_health(party)
            # The answers must come from our programs: both RUNNING (alive for startsecs) under this
            # party's supervisord, not from a process that held the port before ours could bind it.
            if all(health.values()) and _programs_running(party):
                del pending[party_id]
                out("  party %-6s up: flow %s (%s), serving %s" % (
                    party_id, party["flow_url"], party["version"], party["serving"]["grpc_address"]))
        if not pending:
            return
        now = time.monotonic()
        failed = None
        if now >= next_rpc:
            next_rpc = now + 1.0
            for party_id, party in pending.items():
                sv_pid = state["parties"][party_id]["supervisord_pid"]
                if not pid_alive(sv_pid):
                    failed = (party_id, "its supervisord (pid %d) exited" % sv_pid)
                    break
                info = program_info(party["supervisor"]["socket"])
                fatal = [n for n, i in info.items() if i.get("statename") == "FATAL"]
                if fatal:
                    failed = (party_id, "supervisord gave up on %s (FATAL)" % ", ".join(fatal))
                    break
        if failed is None and now >= deadline:
            party_id = next(iter(pending))
            failed = (party_id, "not up within %g s" % timeout)
        if failed:
            party_id, why = failed
            raise SandboxError(_failure_report(fed, fed["parties"][party_id], why))
        time.sleep(0.1)


def _programs_running(party):
    info = program_info(party["supervisor"]["socket"])
    return all(info.get(name, {}).get("statename") == "RUNNING" and pid_alive(info[name].get("pid"))
               for name in (FLOW_PROGRAM, SERVING_PROGRAM))


def _failure_report(fed, party, why):
    health = party_health(party)
    info = program_info(party["supervisor"]["socket"])
    states = ", ".join("%s %s" % (n, i.get("statename")) for n, i in sorted(info.items())) or "no answer"
    lines = ["party %s (%s cluster, FATE %s): %s" % (party["party_id"], party["cluster"], party["version"], why),
             "  FATE Flow %s%s: %s" % (party["flow_url"], party["version_path"],
                                       "answers" if health["flow"] else "no answer"),
             "  serving %s / proxy %s: %s" % (party["serving"]["grpc_address"], party["serving"]["proxy_url"],
                                              "listening" if health["serving"] else "not listening"),
             "  supervisord programs: %s" % states]
    report = "\n".join(lines) + "\n"
    if not health["flow"]:
        report += tail(os.path.join(party["log_dir"], "error.log")) + tail(os.path.join(party["log_dir"],
                                                                                        "console.log"))
    if not health["serving"]:
        report += tail(os.path.join(party["serving"]["log_dir"], "error.log")) + \
            tail(os.path.join(party["serving"]["log_dir"], "console.log"))
    if not info:
        report += tail(party["supervisor"]["log_file"])
    return report


# --------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def root_lock(root):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, LOCK_FILE), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another fate_sandbox command is working on %s; waiting" % root, file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_state(root):
    return _read_json(os.path.join(root, STATE_FILE))


def load_federation(root):
    return _read_json(os.path.join(root, FEDERATION_FILE))


def _save_state(root, state):
    _write_json(os.path.join(root, STATE_FILE), state)


def state_problems(state):
    """What is not running of a recorded sandbox ([] = everything runs and answers)."""
    problems = []
    if state.get("status") != "running":
        problems.append("state.json says %r" % state.get("status"))
    for party_id, entry in state.get("parties", {}).items():
        if not pid_alive(entry.get("supervisord_pid")):
            problems.append("supervisord of party %s (pid %s) is gone" % (party_id, entry.get("supervisord_pid")))
        for host, port in entry.get("ports", []):
            if not port_open(host, port):
                problems.append("party %s: nothing answers on %s:%d" % (party_id, host, port))
    ssh_entry = state.get("ssh")
    if ssh_entry:
        for address in ssh_entry["addresses"]:
            if not port_open(address, ssh_entry["port"]):
                problems.append("no sshd answers on %s:%d" % (address, ssh_entry["port"]))
    zk_entry = state.get("zookeeper")
    if zk_entry:
        if not pid_alive(zk_entry.get("pid")):
            problems.append("ZooKeeper (pid %s) is gone" % zk_entry.get("pid"))
        elif not port_open(zk_entry["address"], zk_entry["port"]):
            problems.append("ZooKeeper does not answer on %s:%d" % (zk_entry["address"], zk_entry["port"]))
    return problems


def _stop_state(state, out, timeout=20.0):
    """Stop what `state` records, by pid; returns the ports still open afterwards."""
    ssh_entry = state.get("ssh")
    ssh_ports = []
    if ssh_entry:
        ssh_ports = [(a, ssh_entry["port"]) for a in ssh_entry["addresses"]]
        if sandbox_ssh.stop(state["root"]):
            out("  sshd stopped on %s" % ", ".join(ssh_entry["addresses"]))
        else:
            out("  some sshd under %s did not stop" % os.path.join(state["root"], "ssh"))
    parties = state.get("parties", {})
    waiting = []      # pids to see gone
    programs = {}     # party -> pids of its programs (to SIGKILL if supervisord cannot stop them)
    for party_id, entry in parties.items():
        pid = entry.get("supervisord_pid")
        if not is_our_supervisord(pid, entry.get("supervisor_config")):
            if pid_alive(pid):
                out("  party %s: pid %s is not our supervisord any more; not touching it" % (party_id, pid))
            continue
        programs[party_id] = [i["pid"] for i in program_info(entry["supervisor_socket"]).values() if i.get("pid")]
        try:
            os.kill(pid, signal.SIGTERM)
            waiting.append(pid)
            out("  party %s: SIGTERM to supervisord (pid %d)" % (party_id, pid))
        except ProcessLookupError:
            pass
    all_programs = [p for pids in programs.values() for p in pids]
    party_ports = [tuple(hp) for entry in parties.values() for hp in entry.get("ports", [])]

    def settled():
        return not any(pid_alive(p) for p in waiting + all_programs) and \
            not any(port_open(h, p, 0.2) for h, p in party_ports)

    if not _poll(settled, timeout):
        for pid in waiting:
            if pid_alive(pid):
                out("  supervisord pid %d did not stop; SIGKILL" % pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid in all_programs:
            if is_our_program(pid):
                out("  program pid %d did not stop; SIGKILL" % pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        _poll(settled, 5.0)
    for entry in parties.values():
        with contextlib.suppress(FileNotFoundError):
            if not pid_alive(entry.get("supervisord_pid")):
                os.unlink(entry["supervisor_socket"])

    zk_entry = state.get("zookeeper")
    zk_ports = []
    if zk_entry:
        pid = zk_entry.get("pid")
        zk_ports = [(zk_entry["address"], zk_entry["port"])]
        if zk.stop(pid, zk_entry.get("config")):
            out("  ZooKeeper: SIGTERM (pid %d)" % pid)

            def zk_gone():
                return not pid_alive(pid) and not port_open(zk_entry["address"], zk_entry["port"], 0.2)
            if not _poll(zk_gone, 10.0):
                out("  ZooKeeper pid %d did not stop; SIGKILL" % pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _poll(zk_gone, 5.0)
        elif pid_alive(pid):
            out("  pid %s is not our ZooKeeper any more; not touching it" % pid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(os.path.dirname(zk_entry["config"]), "zookeeper.pid"))
    return [(h, p) for h, p in party_ports + zk_ports + ssh_ports if port_open(h, p, 0.2)]


def _poll(condition, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------

def _wipe(root, keep_data):
    if keep_data:
        return
    for name in ("parties", "zookeeper", "ssh"):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
    for name in (FEDERATION_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, name))


def _check_ports_free(fed, options):
    busy = []
    for party in fed["parties"].values():
        for host, port in party_ports(party):
            if port_open(host, port, 0.2):
                busy.append("%s:%d %s" % (host, port, port_owner(host, port)))
    for address in ssh_addresses(fed):
        port = options.base_port + SSH_PORT_OFFSET
        if port_open(address, port, 0.2):
            busy.append("%s:%d %s" % (address, port, port_owner(address, port)))
    if options.zookeeper and port_open(ZK_ADDRESS, options.zk_port, 0.2):
        busy.append("%s:%d %s" % (ZK_ADDRESS, options.zk_port, port_owner(ZK_ADDRESS, options.zk_port)))
    if busy:
        raise SandboxError("ports the sandbox needs are in use (another sandbox? pick --base-port/--subnet/"
                           "--zk-port):\n  " + "\n  ".join(b.strip() for b in busy))


def _child_env(fed):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)          # the programs set their own
    env.pop("SUPERVISOR_SERVER_URL", None)
    env["FATE_SANDBOX_ROOT"] = fed["root"]
    return env


def start(options, out=print):
    """Start the sandbox (or report the running one); returns the federation dict."""
    begin = time.monotonic()
    root = options.root
    with root_lock(root):
        state = load_state(root)
        if state:
            problems = state_problems(state)
            if not problems:
                out("sandbox already running in %s (started %s); nothing started"
                    % (root, state.get("started_at")))
                if state.get("options") != options.key():
                    out("warning: it runs with %s, not the requested %s; `stop` first to change them"
                        % (json.dumps(state.get("options"), sort_keys=True),
                           json.dumps(options.key(), sort_keys=True)))
                return load_federation(root)
            out("sandbox in %s is not healthy (%s); stopping what is left of it"
                % (root, "; ".join(problems)))
            _stop_state(state, out)
            os.unlink(os.path.join(root, STATE_FILE))

        previous = load_federation(root) if options.keep_data else None
        password = ((previous or {}).get("zookeeper") or {}).get("password") or new_password()
        fed = plan(options, password)
        _check_ports_free(fed, options)
        _wipe(root, options.keep_data)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, FEDERATION_FILE))

        state = {"status": "starting", "root": root, "launcher_pid": os.getpid(),
                 "started_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "options": options.key(), "zookeeper": None, "parties": {}}
        try:
            if options.zookeeper:
                _start_zookeeper(fed, options, state, out)
            for party in fed["parties"].values():
                write_party(fed, party)
            env = _child_env(fed)
            if options.ssh:
                _start_ssh(fed, options, state, out)
            for party_id, party in fed["parties"].items():
                pid = start_supervisord(party, env)
                state["parties"][party_id] = {
                    "supervisord_pid": pid, "supervisor_config": party["supervisor"]["config"],
                    "supervisor_socket": party["supervisor"]["socket"],
                    "pid_file": party["supervisor"]["pid_file"], "ports": party_ports(party)}
                _save_state(root, state)
            _wait_up(fed, state, options.timeout, out)
        except BaseException:
            out("start failed; stopping what was started (logs stay under %s)" % root)
            _stop_state(state, lambda msg: None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, STATE_FILE))
            raise
        state["status"] = "running"
        state["start_seconds"] = round(time.monotonic() - begin, 2)
        _write_json(os.path.join(root, FEDERATION_FILE), fed)
        _save_state(root, state)
    out("sandbox up in %.1f s: %s" % (time.monotonic() - begin, os.path.join(root, FEDERATION_FILE)))
    return fed


def _start_zookeeper(fed, options, state, out):
    zk_dir = os.path.join(options.root, "zookeeper")
    config = zk.write_config(zk_dir, options.zk_port, ZK_ADDRESS)
    pid = zk.start(zk_dir, config)
    state["zookeeper"] = {"pid": pid, "config": config, "address": ZK_ADDRESS, "port": options.zk_port}
    _save_state(options.root, state)
    zk.wait_ready(ZK_ADDRESS, options.zk_port, pid, timeout=options.timeout,
                  log_path=os.path.join(zk_dir, "logs", "zookeeper.out"))
    zk_conf = fed["zookeeper"]
    zk.create_roots(zk_conf["hosts"], zk_conf["user"], zk_conf["password"])
    out("  zookeeper %s up (pid %d), %s ACL'd for user %s"
        % (zk_conf["hosts"][0], pid, " ".join(zk.ROOTS), zk_conf["user"]))


def ssh_addresses(fed):
    return [p["ssh"]["host"] for p in fed["parties"].values() if p.get("ssh")]


def _start_ssh(fed, options, state, out):
    addresses = ssh_addresses(fed)
    port = options.base_port + SSH_PORT_OFFSET
    try:
        sandbox_ssh.start(options.root, addresses, port, timeout=options.timeout)
    except (sandbox_ssh.SshSandboxError, OSError, subprocess.CalledProcessError) as exc:
        raise SandboxError("sshd for the party hosts did not start: %s (is openssh-server installed? "
                           "scripts/bootstrap.sh installs it; --no-ssh starts the sandbox without it)" % exc)
    state["ssh"] = {"addresses": addresses, "port": port}
    _save_state(options.root, state)
    out("  sshd on %s, port %d (key %s)" % (", ".join(addresses), port,
                                            os.path.join(options.root, "ssh", "client_key")))


def stop(root, out=print):
    root = os.path.abspath(os.path.expanduser(root))
    begin = time.monotonic()
    if not os.path.isdir(root):
        out("sandbox not running (no %s)" % root)
        return 0
    with root_lock(root):
        state = load_state(root)
        if not state:
            out("sandbox not running (no %s)" % os.path.join(root, STATE_FILE))
            return 0
        still_open = _stop_state(state, out)
        os.unlink(os.path.join(root, STATE_FILE))
    if still_open:
        out("stopped, but these ports still answer: %s" % ", ".join("%s:%d" % hp for hp in still_open))
        return 1
    out("sandbox stopped in %.1f s" % (time.monotonic() - begin))
    return 0


def status(root, out=print):
    root = os.path.abspath(os.path.expanduser(root))
    state = load_state(root) if os.path.isdir(root) else None
    if not state:
        out("sandbox not running (no state.json in %s)" % root)
        return 3
    fed = load_federation(root)
    ok = state.get("status") == "running"
    out("sandbox in %s: %s since %s" % (root, state.get("status"), state.get("started_at")))
    zk_entry = state.get("zookeeper")
    if zk_entry:
        up = pid_alive(zk_entry["pid"]) and zk.four_letter(zk_entry["address"], zk_entry["port"]) == "imok"
        ok = ok and up
        out("zookeeper %s:%d pid %d: %s" % (zk_entry["address"], zk_entry["port"], zk_entry["pid"],
                                            "up" if up else "DOWN"))
    ssh_entry = state.get("ssh")
    if ssh_entry:
        info = sandbox_ssh.status(root) or {"alive": {}}
        for address in ssh_entry["addresses"]:
            up = info["alive"].get(address, False)
            ok = ok and up
            out("sshd %s:%d: %s" % (address, ssh_entry["port"], "up" if up else "DOWN"))
    supervisorctl = venv_tool("supervisorctl")
    for party_id, entry in state.get("parties", {}).items():
        party = (fed or {}).get("parties", {}).get(party_id)
        alive = pid_alive(entry["supervisord_pid"])
        out("party %s: supervisord pid %d %s" % (party_id, entry["supervisord_pid"],
                                                 "running" if alive else "GONE"))
        if alive:
            result = subprocess.run([supervisorctl, "-c", entry["supervisor_config"], "status"],
                                    capture_output=True, text=True, timeout=30)
            for line in result.stdout.splitlines():
                out("  " + line)
            ok = ok and result.returncode == 0
        else:
            ok = False
        if party:
            health = party_health(party)
            ok = ok and all(health.values())
            out("  flow %s%s: %s" % (party["flow_url"], party["version_path"],
                                     "answers" if health["flow"] else "NO ANSWER"))
            out("  serving %s, proxy %s: %s" % (party["serving"]["grpc_address"], party["serving"]["proxy_url"],
                                                "listening" if health["serving"] else "NOT LISTENING"))
    return 0 if ok else 1
