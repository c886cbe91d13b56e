"""ZooKeeper as FATE Flow 1.x uses it: its own transfer URL(s) in, the servings' addresses out."""
import json
import logging
import time
import urllib.parse

SERVING_PROVIDERS = "/FATE-SERVICES/serving/online/publishLoad/providers"
TRANSFER_PROVIDERS = "/FATE-SERVICES/flow/online/transfer/providers"
FLOW_INSTANCES = "/FATE-COMPONENTS/fate-flow"

log = logging.getLogger("fate_flow.registry")


class Registry:
    """Connected at start; a connection or auth failure stops the Flow from starting, as in FATE."""

    def __init__(self, config, profile):
        from kazoo.client import KazooClient  # pylint: disable=import-outside-toplevel
        from kazoo.security import make_digest_acl  # pylint: disable=import-outside-toplevel

        self.profile = profile
        self.config = config
        auth, acl = None, None
        if config.zk_use_acl:
            if profile.blueprint_app and not (config.zk_user and config.zk_password):
                raise RuntimeError("zookeeper use_acl is true but user or password is missing")
            auth = [("digest", "%s:%s" % (config.zk_user, config.zk_password))]
            acl = [make_digest_acl(config.zk_user, config.zk_password, all=True)]
        self.client = KazooClient(hosts=",".join(config.zk_hosts), auth_data=auth, default_acl=acl, timeout=5.0)
        self.client.start(timeout=10)

    def stop(self):
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def _ephemeral(self, path, value=b""):
        if self.client.exists(path):
            self.client.delete(path)
        self.client.create(path, value, ephemeral=True, makepath=True)

    def register_flow(self, models):
        """Startup registration: the transfer URL (<=1.6) or one node per model (1.5.2+), G4 instance node."""
        cfg = self.config
        base = "http://%s:%s/v1/model/transfer" % (cfg.host, cfg.http_port)
        if not self.profile.blueprint_app:
            self._ephemeral("%s/%s" % (TRANSFER_PROVIDERS, urllib.parse.quote(base, safe=" ")))
        if self.profile.per_model_zk:
            for party_model_id, version in models:
                self.register_model(party_model_id, version)
        if self.profile.fate_flow_zk_instance:
            info = {"instance_id": "%s:%s" % (cfg.host, cfg.grpc_port), "timestamp": int(time.time() * 1000),
                    "version": cfg.versions.get("FATEFlow", self.profile.flow_version), "host": cfg.host,
                    "grpc_port": cfg.grpc_port, "http_port": cfg.http_port}
            self._ephemeral("%s/%s" % (FLOW_INSTANCES, urllib.parse.quote("%s:%s" % (cfg.host, cfg.grpc_port))),
                            json.dumps(info).encode())

    def register_model(self, party_model_id, version):
        if not self.profile.per_model_zk:
            return
        url = "http://%s:%s/v1/model/transfer/%s/%s" % (self.config.host, self.config.http_port,
                                                       party_model_id.replace("#", "~"), version)
        safe = "" if self.profile.blueprint_app else " "
        self._ephemeral("%s/%s" % (TRANSFER_PROVIDERS, urllib.parse.quote(url, safe=safe)))

    def servings(self):
        if not self.client.exists(SERVING_PROVIDERS):
            return []
        found = []
        for child in self.client.get_children(SERVING_PROVIDERS):
            url = urllib.parse.unquote(child)
            if self.profile.blueprint_app:
                address = urllib.parse.urlparse(url).netloc
            else:
                parts = url.split("/")
                address = parts[2] if len(parts) > 2 else ""
            if address and address not in found:
                found.append(address)
        return found
