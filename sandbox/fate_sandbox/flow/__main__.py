"""python -m fate_sandbox.flow --home <FATE home> --version <profile>: run one party's FATE Flow.

Reads the FATE home's config once, connects to ZooKeeper when use_registry is on (a failure
stops the start, as in FATE), serves until SIGTERM.
"""
import argparse
import logging
import os
import signal
import sys
import threading

from fate_sandbox import model_store as ms
from fate_sandbox import profiles
from fate_sandbox.flow import config as flow_config
from fate_sandbox.flow import web
from fate_sandbox.flow.app import FlowApp


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fate_sandbox.flow")
    parser.add_argument("--home", required=True, help="FATE home (project base) of this party")
    parser.add_argument("--version", required=True, help="version profile: 1.4, 1.6, 1.8 or 1.11")
    args = parser.parse_args(argv)
    home = os.path.abspath(args.home)
    profile = profiles.get(args.version)
    log_dir = os.path.join(home, profile.logs_dir, "fate_flow")
    os.makedirs(log_dir, exist_ok=True)
    handler = logging.FileHandler(os.path.join(log_dir, "fate_flow_stat.log"))
    handler.setFormatter(logging.Formatter("[%(levelname)s] [%(asctime)s] [%(name)s] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("kazoo").setLevel(logging.WARNING)

    config = flow_config.load(home, profile)
    registry = None
    if config.use_registry:
        from fate_sandbox.flow.registry import Registry  # pylint: disable=import-outside-toplevel
        try:
            registry = Registry(config, profile)
        except Exception as exc:  # pylint: disable=broad-except
            print("FATE Flow start failed: cannot use zookeeper %s: %r" % (",".join(config.zk_hosts), exc),
                  file=sys.stderr, flush=True)
            return 1
    app = FlowApp(home, profile, config, registry)
    # Models a training job left on this Flow are in its database, as in a real cluster.
    registered = []
    for role, party_id, path in app.local_models():
        pipeline = ms.read_pipeline(path)
        if not app.db.find(role=role, party_id=party_id, model_id=pipeline.model_id,
                           model_version=pipeline.model_version):
            app.db.save(app.model_row(role, party_id, path))
        registered.append((ms.party_model_id(role, party_id, pipeline.model_id), pipeline.model_version))
    if registry:
        try:
            registry.register_flow(registered)
        except Exception as exc:  # pylint: disable=broad-except
            print("FATE Flow start failed: zookeeper registration: %r" % (exc,), file=sys.stderr, flush=True)
            registry.stop()
            return 1
    try:
        server = web.Server((config.host, config.http_port), web.make_handler(app))
    except OSError as exc:
        print("FATE Flow start failed: cannot listen on %s:%s: %s" % (config.host, config.http_port, exc),
              file=sys.stderr, flush=True)
        return 1

    grpc_server = _grpc_listener(config)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("FATE Flow http server start... %s:%s (FATE %s)" % (config.host, config.http_port, profile.fate_version),
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if grpc_server:
            grpc_server.stop(0)
        if registry:
            registry.stop()
    return 0


def _grpc_listener(config):
    """FATE Flow also listens on its gRPC port (party-to-party traffic); up-checks look at both ports."""
    import grpc  # pylint: disable=import-outside-toplevel
    from concurrent import futures  # pylint: disable=import-outside-toplevel
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    if not server.add_insecure_port("%s:%s" % (config.host, config.grpc_port)):
        return None
    server.start()
    return server


if __name__ == "__main__":
    sys.exit(main())
