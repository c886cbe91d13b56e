"""ZooKeeper registration of the serving emulator (FATE-Serving's @RegisterService, ZookeeperRegistry).

Nodes (EPHEMERAL, parents made as needed, default ACL = digest user:password with all rights when
acl.enable=true):

* at start, for each ModelService method M in publishLoad, publishBind, publishOnline, queryModel,
  unload, unbind:
  `/FATE-SERVICES/serving/online/<M>/providers/<quote(URL, safe='')>` with
  URL = `grpc://<ip>:<port>/<M>?router_mode=ALL_ALLOWED&timestamp=<ms>&version=216`;
* after each successful publishBind of service id S, for C in inference, batchInference:
  `/FATE-SERVICES/serving/<S>/<C>/providers/<quote(grpc://<ip>:<port>/<C>?...)>` (real serving registers
  its guest inference services under the service id as "environment"; serving-proxy routes by it).

FATE Flow 1.7+ reads `urlparse(unquote(child)).netloc` and 1.5/1.6 `unquote(child).split('/')[2]`;
both give `<ip>:<port>`. Before creating a node, leftovers of an earlier run with the same ip:port under
the same parent (ephemeral nodes outlive a killed process until its session expires) are deleted, so
FATE Flow never sees the same serving twice. After a session expiry the nodes are created again.
"""
import logging
import threading
import time
import urllib.parse

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_digest_acl

LOG = logging.getLogger("fate_sandbox.serving")

ROOT = "/FATE-SERVICES"
SERVING_VERSION = 216   # MetaInfo.CURRENT_VERSION of FATE-Serving 2.1.6
MODEL_SERVICE_METHODS = ("publishLoad", "publishBind", "publishOnline", "queryModel", "unload", "unbind")
GUEST_SERVICES = ("inference", "batchInference")

logging.getLogger("kazoo").setLevel(logging.WARNING)


class RegistryError(Exception):
    pass


def provider_url(ip, port, service):
    return "grpc://%s:%d/%s?router_mode=ALL_ALLOWED&timestamp=%d&version=%d" % (
        ip, port, service, int(time.time() * 1000), SERVING_VERSION)


def address_of(child):
    """ip:port of a provider node name, as FATE Flow 1.7+ reads it."""
    return urllib.parse.urlparse(urllib.parse.unquote(child)).netloc


class ZkRegistry:
    def __init__(self, config):
        self.config = config
        self.address = "%s:%d" % (config.ip, config.port)
        kwargs = {}
        if config.acl_enable:
            kwargs["auth_data"] = [("digest", "%s:%s" % (config.acl_username, config.acl_password))]
            kwargs["default_acl"] = [make_digest_acl(config.acl_username, config.acl_password, all=True)]
        self.client = KazooClient(hosts=config.zk_url, timeout=10.0,
                                  connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 2.0},
                                  **kwargs)
        self._lock = threading.Lock()
        self._wanted = {}          # parent path -> service name, re-created after a session loss
        self._session_lost = False
        self._resync = threading.Event()
        self._stopping = threading.Event()
        self._worker = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        try:
            self.client.start(timeout=self.config.zk_timeout)
        except (KazooTimeoutError, KazooException, OSError) as exc:
            self._stopping.set()
            self._close()
            raise RegistryError("cannot connect to ZooKeeper %s: %s" % (self.config.zk_url, exc)) from exc
        self.client.add_listener(self._on_state)
        self._worker = threading.Thread(target=self._resync_loop, name="zk-resync", daemon=True)
        self._worker.start()
        LOG.info("connected to ZooKeeper %s (acl %s)", self.config.zk_url,
                 "digest user %s" % self.config.acl_username if self.config.acl_enable else "off")

    def stop(self):
        self._stopping.set()
        self._resync.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
        self._close()

    def _close(self):
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # pylint: disable=broad-except
            pass

    # -- registration --------------------------------------------------------------------------------
    def register_model_service(self):
        """Startup registration; RegistryError (e.g. NoAuth) makes the emulator fail, like real serving."""
        for method in MODEL_SERVICE_METHODS:
            parent = "%s/serving/online/%s/providers" % (ROOT, method)
            try:
                self._register(parent, method)
            except KazooException as exc:
                raise RegistryError("failed to register %s under %s: %s" % (method, parent,
                                                                             type(exc).__name__)) from exc

    def register_service(self, service_id):
        """After a bind: best effort, failures are logged (real serving logs and goes on)."""
        for service in GUEST_SERVICES:
            parent = "%s/serving/%s/%s/providers" % (ROOT, service_id, service)
            try:
                self._register(parent, service)
            except (KazooException, ValueError) as exc:
                LOG.error("try to register service %s for service id %s failed: %s", service, service_id,
                          type(exc).__name__)

    def _register(self, parent, service):
        with self._lock:
            self._wanted[parent] = service
        name = urllib.parse.quote(provider_url(self.config.ip, self.config.port, service), safe="")
        self._drop_stale(parent)
        try:
            self.client.create("%s/%s" % (parent, name), b"", ephemeral=True, makepath=True)
        except NodeExistsError:
            pass
        LOG.info("registered %s/%s", parent, name)

    def _drop_stale(self, parent):
        try:
            children = self.client.get_children(parent)
        except NoNodeError:
            return
        for child in children:
            if address_of(child) == self.address:
                try:
                    self.client.delete("%s/%s" % (parent, child))
                    LOG.info("removed stale registration %s/%s", parent, child)
                except NoNodeError:
                    pass

    def children(self, path):
        """Children of a path; [] when it is missing or ZooKeeper is unavailable."""
        try:
            return self.client.get_children(path)
        except NoNodeError:
            return []
        except KazooException as exc:
            LOG.error("cannot list %s: %s", path, type(exc).__name__)
            return []

    # -- session loss ----------------------------------------------------------------------------------
    def _on_state(self, state):
        # Runs in kazoo's event thread: no blocking calls here.
        if self._stopping.is_set():
            return
        if state == KazooState.LOST:
            LOG.warning("ZooKeeper session lost; will register again when reconnected")
            self._session_lost = True
        elif state == KazooState.CONNECTED and self._session_lost:
            self._session_lost = False
            self._resync.set()

    def _resync_loop(self):
        while not self._stopping.is_set():
            self._resync.wait()
            self._resync.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                wanted = dict(self._wanted)
            for parent, service in wanted.items():
                try:
                    self._register(parent, service)
                except KazooException as exc:
                    LOG.error("re-registration under %s failed: %s", parent, type(exc).__name__)
