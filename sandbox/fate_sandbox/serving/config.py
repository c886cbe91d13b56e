"""Reading the serving emulator's configuration: serving-server.properties and route_table.json.

The keys and their defaults are listed in the package docstring (fate_sandbox/serving/__init__.py).
"""
import json
import os
import threading
from dataclasses import dataclass, field

PROPERTIES = os.path.join("conf", "serving-server.properties")
ROUTE_TABLE = os.path.join("conf", "route_table.json")
LOG_FILE = os.path.join("logs", "serving.log")

DEFAULT_TRANSFER_URL = "http://127.0.0.1:9380/v1/model/transfer"


class ConfigError(Exception):
    """The configuration cannot be used; the emulator refuses to start."""


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text):
    """Java properties logical lines: comments dropped, backslash continuations joined."""
    pending = None
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if pending is None and (not line or line[0] in "#!"):
            continue
        # An odd number of trailing backslashes continues the line.
        stripped = line.rstrip("\\")
        continued = (len(line) - len(stripped)) % 2 == 1
        if continued:
            line = line[:-1]
        pending = line if pending is None else pending + line
        if not continued:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def _unescape(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_properties(text):
    """Parse Java .properties text (key=value, key: value or key value) into a dict."""
    props = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        # The separator is whitespace, '=' or ':', or whitespace around one '=' or ':'.
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        props[_unescape(key)] = _unescape(rest)
    return props


def _bool(value, default):
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() == "true"


def _int(props, key, default):
    value = props.get(key, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError("%s must be an integer, got %r" % (key, value)) from exc


@dataclass
class ServingConfig:
    home: str
    party_id: str = ""
    ip: str = "127.0.0.1"
    port: int = 8000
    proxy_port: int = 8059
    zk_url: str = ""
    use_register: bool = True
    acl_enable: bool = False
    acl_username: str = ""
    acl_password: str = field(default="", repr=False)
    model_transfer_url: str = DEFAULT_TRANSFER_URL
    feature_file: str = ""
    model_cache_path: str = ""
    zk_timeout: float = 10.0
    transfer_timeout: float = 20.0
    inference_timeout: float = 3.0

    @property
    def registry_enabled(self):
        return bool(self.zk_url) and self.use_register

    @property
    def log_file(self):
        return os.path.join(self.home, LOG_FILE)

    @property
    def route_table_file(self):
        return os.path.join(self.home, ROUTE_TABLE)

    @property
    def cache_dir(self):
        """Where loaded models and bindings are persisted, or '' for memory only."""
        if not self.model_cache_path:
            return ""
        base = self.model_cache_path
        if not os.path.isabs(base):
            base = os.path.join(self.home, base)
        return os.path.join(base, ".fate")

    def describe(self):
        """A loggable summary; never contains the ACL password."""
        return ("party.id=%s ip=%s port=%d proxy.port=%d zk.url=%s useRegister=%s acl.enable=%s "
                "acl.username=%s acl.password=%s model.transfer.url=%s feature.file=%s model.cache.path=%s"
                % (self.party_id, self.ip, self.port, self.proxy_port, self.zk_url or "-", self.use_register,
                   self.acl_enable, self.acl_username or "-", "******" if self.acl_password else "-",
                   self.model_transfer_url, self.feature_file or "-", self.model_cache_path or "-"))


def load_config(home):
    home = os.path.abspath(home)
    path = os.path.join(home, PROPERTIES)
    try:
        with open(path, encoding="utf-8") as f:
            props = parse_properties(f.read())
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc)) from exc
    cfg = ServingConfig(home=home)
    cfg.party_id = props.get("party.id", "").strip()
    cfg.ip = props.get("ip", "").strip() or cfg.ip
    cfg.port = _int(props, "port", cfg.port)
    cfg.proxy_port = _int(props, "proxy.port", cfg.proxy_port)
    cfg.zk_url = ",".join(h.strip() for h in props.get("zk.url", "").split(",") if h.strip())
    cfg.use_register = _bool(props.get("useRegister"), True)
    cfg.acl_enable = _bool(props.get("acl.enable"), False)
    cfg.acl_username = props.get("acl.username", "").strip()
    cfg.acl_password = props.get("acl.password", "").strip()
    cfg.model_transfer_url = props.get("model.transfer.url", "").strip() or DEFAULT_TRANSFER_URL
    feature_file = props.get("feature.file", "").strip()
    if feature_file and not os.path.isabs(feature_file):
        feature_file = os.path.join(home, feature_file)
    cfg.feature_file = feature_file
    cfg.model_cache_path = props.get("model.cache.path", "").strip()
    cfg.zk_timeout = _int(props, "zk.timeout", int(cfg.zk_timeout * 1000)) / 1000.0
    cfg.transfer_timeout = _int(props, "model.transfer.timeout", int(cfg.transfer_timeout * 1000)) / 1000.0
    cfg.inference_timeout = _int(props, "single.inference.rpc.timeout", int(cfg.inference_timeout * 1000)) / 1000.0
    for name, port in (("port", cfg.port), ("proxy.port", cfg.proxy_port)):
        if not 0 < port < 65536:
            raise ConfigError("%s out of range: %d" % (name, port))
    if cfg.port == cfg.proxy_port:
        raise ConfigError("port and proxy.port must differ")
    if cfg.registry_enabled and cfg.acl_enable and not (cfg.acl_username and cfg.acl_password):
        raise ConfigError("acl.enable=true needs acl.username and acl.password")
    return cfg


class RouteTable:
    """conf/route_table.json, re-read when the file changes (the launcher may add routes later)."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._mtime = None
        self._table = {}

    def _refresh(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            self._mtime, self._table = None, {}
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            table = doc.get("route_table", {}) if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            table = {}
        self._mtime, self._table = mtime, table if isinstance(table, dict) else {}

    def lookup(self, party_id):
        """(ip, port) of the serving-proxy of `party_id`, falling back to the 'default' party; or None."""
        with self._lock:
            self._refresh()
            table = self._table
        for key in (str(party_id), "default"):
            entry = table.get(key)
            if not isinstance(entry, dict):
                continue
            for name in ("default", "serving"):
                routes = entry.get(name)
                if isinstance(routes, list):
                    for route in routes:
                        if isinstance(route, dict) and route.get("ip") and route.get("port"):
                            return str(route["ip"]), int(route["port"])
        return None
