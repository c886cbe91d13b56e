"""python -m fate_sandbox start|stop|status: the sandbox federation's launcher (docs/dev/sandbox.md)."""
import argparse
import sys

from fate_sandbox import federation
from fate_sandbox.zk import ZooKeeperError


def _party_version(text):
    party_id, sep, version = text.partition("=")
    if not sep or not party_id or not version:
        raise argparse.ArgumentTypeError("expected PARTY_ID=VERSION, like 9999=1.4 (got %r)" % text)
    return party_id.strip(), version.strip()


def parser():
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", default=federation.DEFAULT_ROOT,
                      help="sandbox directory (default: %(default)s)")

    p = argparse.ArgumentParser(prog="python -m fate_sandbox",
                                description="Local FATE federation: FATE Flow and FATE-Serving emulators "
                                            "under supervisord, optionally registered in ZooKeeper.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("start", parents=[root], help="start the sandbox (does nothing if it already runs)")
    s.add_argument("--source-version", default="1.6", help="FATE of parties 9999 and 10000 (1.4, 1.6, 1.8, 1.11)")
    s.add_argument("--destination-version", default="1.11", help="FATE of parties 99 and 100")
    s.add_argument("--party-version", action="append", type=_party_version, default=[], metavar="PID=V",
                   help="override one party's version (repeatable), e.g. 10000=1.8")
    s.add_argument("--zookeeper", action="store_true",
                   help="run a ZooKeeper with a digest ACL (user fate, generated password)")
    s.add_argument("--registry", action="store_true",
                   help="set use_registry: true in every FATE Flow config (implies --zookeeper)")
    s.add_argument("--base-port", type=int, default=19380,
                   help="first port; party i uses BASE+10*i+{0 flow http,1 flow grpc,2 serving grpc,3 proxy}")
    s.add_argument("--subnet", default="127.0.10", help="parties listen on SUBNET.1 .. SUBNET.<2 * pairs>")
    s.add_argument("--zk-port", type=int, default=12181, help="ZooKeeper client port on 127.0.0.1")
    s.add_argument("--keep-data", action="store_true",
                   help="keep models, databases and logs of the previous run (configs are rewritten)")
    s.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the services")
    s.add_argument("--no-ssh", dest="ssh", action="store_false",
                   help="do not start an sshd per party address (by default BASE+9 on every party address)")
    s.add_argument("--pairs", type=int, default=federation.DEFAULT_PAIRS, metavar="N",
                   help="N source parties (9999, 10000, ...) and N destination parties (99, 100, ...): guest on "
                        "the first of each cluster, hosts on the others, arbiter on the second (all three on the "
                        "one party when N is 1); default %(default)s, FATE's migration guide")
    s.add_argument("--model-size", default="0", metavar="SIZE",
                   help="add one incompressible file of SIZE (100M, 1G, 4G; binary units) to the deployed model "
                        "of each source party (its first job role), so each migrated archive is about that large")
    s.add_argument("--model-size-party", action="append", default=[], metavar="PID",
                   help="only these source parties get the --model-size file (repeatable)")

    sub.add_parser("stop", parents=[root], help="stop exactly what the last start started")
    sub.add_parser("status", parents=[root], help="show supervisord programs and which ports answer")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.command == "start":
            options = federation.Options(
                root=args.root, source_version=args.source_version,
                destination_version=args.destination_version, party_versions=dict(args.party_version),
                zookeeper=args.zookeeper, registry=args.registry, base_port=args.base_port,
                subnet=args.subnet, zk_port=args.zk_port, keep_data=args.keep_data, timeout=args.timeout,
                ssh=args.ssh, pairs=args.pairs, model_size=args.model_size,
                model_size_parties=args.model_size_party)
            federation.start(options, out=_out)
            return 0
        if args.command == "stop":
            return federation.stop(args.root, out=_out)
        return federation.status(args.root, out=_out)
    except (federation.SandboxError, ZooKeeperError) as exc:
        print("fate_sandbox: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _out(message):
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
