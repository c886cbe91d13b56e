"""What the FATE Flow emulator reads from a FATE home at start (and only at start).

1.4: arch/conf/base_conf.yaml (fate_flow, use_registry, zookeeper, work_mode) and
arch/conf/server_conf.json (servers.fateflow, servers.servings).
1.5-1.11: conf/service_conf.yaml (fateflow, use_registry, zookeeper, servings, work_mode in 1.5/1.6,
http_app_key/http_secret_key in 1.7+, party_id in 1.9+), merged with conf/local.service_conf.yaml in 1.7+.
"""
import dataclasses
import json
import os

import yaml


@dataclasses.dataclass
class FlowConfig:
    host: str
    http_port: int
    grpc_port: int
    servings: list
    use_registry: bool
    zk_hosts: list
    zk_use_acl: bool
    zk_user: str
    zk_password: str
    app_key: str
    secret_key: str
    work_mode: int
    party_id: str
    route_table: dict
    versions: dict              # fate.env


class ConfigError(Exception):
    pass


def _servings(value):
    """servings may be a dict with hosts, a list, or (1.7+) a scalar."""
    if isinstance(value, dict):
        value = value.get("hosts")
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(v) for v in value if v is not None]


def _registry_on(value):
    return value is True or (isinstance(value, str) and value.lower() in ("zookeeper", "true"))


def read_fate_env(home):
    versions = {}
    path = os.path.join(home, "fate.env")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    versions[key.strip()] = value.strip()
    return versions


def read_route_table(home):
    path = os.path.join(home, "eggroll", "conf", "route_table.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        table = json.load(f).get("route_table", {})
    routes = {}
    for party_id, services in table.items():
        entries = services.get("fateflow") or services.get("default") or []
        if entries:
            routes[str(party_id)] = "%s:%s" % (entries[0]["ip"], entries[0]["port"])
    return routes


def load(home, profile):
    try:
        if profile.uses_service_conf:
            conf = _load_yaml(os.path.join(home, "conf", "service_conf.yaml"))
            local = os.path.join(home, "conf", "local.service_conf.yaml")
            if profile.blueprint_app and os.path.exists(local):
                conf.update(_load_yaml(local))
            flow = conf.get("fateflow") or {}
            zk = conf.get("zookeeper") or {}
            servings = _servings(conf.get("servings"))
            use_registry = _registry_on(conf.get("use_registry"))
            work_mode = conf.get("work_mode", 1)
            party_id = conf.get("party_id")
        else:
            base = _load_yaml(os.path.join(home, "arch", "conf", "base_conf.yaml"))
            with open(os.path.join(home, "arch", "conf", "server_conf.json")) as f:
                server = json.load(f).get("servers", {})
            fate_flow = server.get("fateflow", {})
            flow = {"host": fate_flow.get("host"), "http_port": fate_flow.get("http.port"),
                    "grpc_port": fate_flow.get("grpc.port")}
            flow.update({k: v for k, v in (base.get("fate_flow") or {}).items() if v is not None})
            zk = base.get("zookeeper") or {}
            servings = _servings(server.get("servings"))
            use_registry = _registry_on(base.get("use_registry"))
            work_mode = base.get("work_mode", 1)
            party_id = None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError("cannot read FATE Flow configuration in %s: %s" % (home, exc)) from exc
    zk_hosts = zk.get("hosts") or []
    if isinstance(zk_hosts, str):
        zk_hosts = [zk_hosts]
    return FlowConfig(
        host=str(flow.get("host") or "127.0.0.1"), http_port=int(flow.get("http_port") or 9380),
        grpc_port=int(flow.get("grpc_port") or 9360), servings=servings, use_registry=use_registry,
        zk_hosts=[str(h) for h in zk_hosts], zk_use_acl=bool(zk.get("use_acl")),
        zk_user=str(zk.get("user") or ""), zk_password=str(zk.get("password") or ""),
        app_key=str(flow.get("http_app_key") or "") if profile.signing else "",
        secret_key=str(flow.get("http_secret_key") or "") if profile.signing else "",
        work_mode=work_mode, party_id=str(party_id) if party_id is not None else "",
        route_table=read_route_table(home), versions=read_fate_env(home))


def _load_yaml(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("%s is not a mapping" % path)
    return data
