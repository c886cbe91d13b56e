"""Start, run and stop the serving emulator (see the package docstring for what it does)."""
import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

from fate_sandbox.protos import model_service_pb2_grpc

from .config import ConfigError, RouteTable, load_config
from .grpc_service import ModelService
from .loader import FlowModelLoader
from .models import ModelManager
from .proxy import InferenceEngine, ProxyServer
from .registry import RegistryError, ZkRegistry

LOG = logging.getLogger("fate_sandbox.serving")

EXIT_OK = 0
EXIT_STARTUP = 1   # bad config, port in use, ZooKeeper unreachable or refusing the registration


def _setup_logging(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s")
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(fmt)
    err_handler = logging.StreamHandler(sys.stderr)
    err_handler.setLevel(logging.ERROR)
    err_handler.setFormatter(fmt)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(file_handler)
    root.addHandler(err_handler)


class ServingEmulator:
    def __init__(self, config):
        self.config = config
        self.registry = ZkRegistry(config) if config.registry_enabled else None
        self.manager = ModelManager(config, FlowModelLoader(config, self.registry), self.registry)
        self.engine = InferenceEngine(config, self.manager, RouteTable(config.route_table_file))
        self.grpc_server = None
        self.http_server = None
        self._http_thread = None

    def start(self):
        cfg = self.config
        self.manager.restore()
        if self.registry is not None:
            self.registry.start()
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"),
                                       options=[("grpc.so_reuseport", 0)])
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager), self.grpc_server)
        address = "%s:%d" % (cfg.ip, cfg.port)
        try:
            bound = self.grpc_server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError("cannot listen on %s (gRPC): %s" % (address, exc)) from exc
        if not bound:
            raise OSError("cannot listen on %s (gRPC)" % address)
        self.grpc_server.start()
        LOG.info("gRPC ModelService listening on %s", address)
        if self.registry is not None:
            self.registry.register_model_service()
            for service_id in self.manager.bound_services():
                self.registry.register_service(service_id)
        try:
            self.http_server = ProxyServer((cfg.ip, cfg.proxy_port), self.engine)
        except OSError as exc:
            raise OSError("cannot listen on %s:%d (HTTP): %s" % (cfg.ip, cfg.proxy_port, exc)) from exc
        self._http_thread = threading.Thread(target=self.http_server.serve_forever, name="proxy-http",
                                             kwargs={"poll_interval": 0.5}, daemon=True)
        self._http_thread.start()
        LOG.info("serving-proxy HTTP listening on %s:%d", cfg.ip, cfg.proxy_port)

    def stop(self):
        # Leave ZooKeeper first (the ephemeral nodes go with the session), so that nobody picks a
        # serving that is going away; then stop serving requests.
        if self.registry is not None:
            self.registry.stop()
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
            self.http_server = None
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=2).wait(5)
            self.grpc_server = None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fate_sandbox.serving",
                                     description="FATE-Serving 2.1.x emulator of the sandbox federation")
    parser.add_argument("--home", required=True, help="serving home (conf/serving-server.properties, logs/)")
    args = parser.parse_args(argv)
    home = os.path.abspath(args.home)
    try:
        config = load_config(home)
    except ConfigError as exc:
        print("fate-serving emulator: %s" % exc, file=sys.stderr)
        return EXIT_STARTUP
    _setup_logging(config.log_file)
    LOG.info("starting, pid %d, home %s: %s", os.getpid(), home, config.describe())

    stop = threading.Event()

    def _on_signal(signum, _frame):
        LOG.info("signal %d received, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    emulator = ServingEmulator(config)
    try:
        emulator.start()
    except (OSError, RegistryError) as exc:
        LOG.error("startup failed: %s", exc)
        emulator.stop()
        return EXIT_STARTUP
    LOG.info("started")
    while not stop.wait(3600):
        pass
    emulator.stop()
    LOG.info("stopped")
    return EXIT_OK
