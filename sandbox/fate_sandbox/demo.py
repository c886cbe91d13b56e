"""The manual procedure of FATE's two guides, run with the real `flow` CLI against the sandbox.

    python -m fate_sandbox.demo [--root .sandbox] [--cli 1.11.3]

1. `flow model migrate` on the source guest (MULTIPLE: every source party writes its archive);
2. copy each archive to its destination party (the step the guide leaves to the operator);
3. `flow model import` on each destination party, once per job role;
4. `flow model load` and `flow model bind` on the destination guest;
5. one online inference on the bound service id.
This is the baseline that the collection's playbooks replace, and the sandbox's end-to-end check.
"""
import argparse
import json
import os
import re
import shutil
import sys
import time

import requests

from fate_sandbox.flowcli import FlowCLI
from fate_sandbox.model_store import gen_model_id

ARCHIVE_IN_RETMSG = re.compile(r"Model files can be found at '([^']+)'")


class DemoError(Exception):
    pass


def _check(step, code, answer, output):
    if code != 0 or not isinstance(answer, dict) or answer.get("retcode") != 0:
        raise DemoError("%s failed (exit %s): %s" % (step, code, output.strip()[-2000:]))
    return answer


def run(federation, cli_version="1.11.3", service_id=None, log=print):
    parties = federation["parties"]
    migration = federation["migration"]
    model = federation["model"]
    workdir = os.path.join(federation["root"], "demo")
    os.makedirs(workdir, exist_ok=True)
    cli = FlowCLI(cli_version, workdir)
    src_guest = parties[str(migration["role"]["guest"][0])]
    dst_guest_id = migration["migrate_role"]["guest"][0]
    dst_guest = parties[str(dst_guest_id)]
    unify = time.strftime("%Y%m%d%H%M%S") + "_demo"
    service_id = service_id or "sandbox-demo-%s" % unify

    conf = {"job_parameters": {"federated_mode": "MULTIPLE"},
            "migrate_initiator": {"role": "guest", "party_id": dst_guest_id},
            "role": migration["role"], "migrate_role": migration["migrate_role"],
            "execute_party": migration["role"], "model_id": model["model_id"],
            "model_version": model["deployed_version"], "unify_model_version": unify}
    _write(workdir, "migrate.json", conf)
    log("1. flow model migrate on source guest %s (%s)" % (src_guest["party_id"], src_guest["flow_url"]))
    answer = _check("migrate", *cli.run(src_guest["flow_url"], ["model", "migrate", "-c", "migrate.json"]))
    archives = []
    for role, by_party in answer["data"]["detail"].items():
        for old_pid, result in by_party.items():
            if result["retcode"] != 0:
                raise DemoError("migrate failed on %s %s: %s" % (role, old_pid, result["retmsg"]))
            path = ARCHIVE_IN_RETMSG.search(result["retmsg"]).group(1)
            new_pid = migration["migrate_role"][role][[str(p) for p in migration["role"][role]].index(old_pid)]
            archives.append((role, old_pid, str(new_pid), path))
    for role, ids in migration["role"].items():
        for pid in ids:
            if answer["data"][role][str(pid)] != 0:
                raise DemoError("migrate reported failure for %s %s" % (role, pid))
    new_model_id = gen_model_id(migration["migrate_role"])

    log("2. copy archives to the destination parties")
    for role, old_pid, new_pid, path in archives:
        target_dir = os.path.join(parties[new_pid]["fate_home"], "imported_archives")
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, os.path.basename(path))
        shutil.copyfile(path, target)
        log("   %s %s -> %s %s: %s" % (role, old_pid, role, new_pid, os.path.basename(path)))

    log("3. flow model import on each destination party and role")
    for role, old_pid, new_pid, path in archives:
        target = os.path.join(parties[new_pid]["fate_home"], "imported_archives", os.path.basename(path))
        _write(workdir, "import.json", {"role": role, "party_id": int(new_pid), "model_id": new_model_id,
                                        "model_version": unify, "file": target})
        _check("import %s %s" % (role, new_pid),
               *cli.run(parties[new_pid]["flow_url"], ["model", "import", "-c", "import.json"]))

    roles = {role: [str(p) for p in ids] for role, ids in migration["migrate_role"].items()}
    publish = {"initiator": {"party_id": str(dst_guest_id), "role": "guest"}, "role": roles,
               "job_parameters": {"work_mode": 1, "model_id": new_model_id, "model_version": unify}}
    _write(workdir, "load.json", publish)
    log("4. flow model load and bind (service id %s) on destination guest %s" % (service_id, dst_guest_id))
    _check("load", *cli.run(dst_guest["flow_url"], ["model", "load", "-c", "load.json"]))
    _write(workdir, "bind.json", dict(publish, service_id=service_id))
    _check("bind", *cli.run(dst_guest["flow_url"], ["model", "bind", "-c", "bind.json"]))

    log("5. online inference on %s" % dst_guest["serving"]["inference_url"])
    reply = requests.post(dst_guest["serving"]["inference_url"], timeout=30, json={
        "head": {"serviceId": service_id},
        "body": {"featureData": {"x0": 0.25, "x1": -0.5, "x2": 1.0, "x3": 0.1},
                 "sendToRemoteFeatureData": {"device_id": "demo-0001"}}}).json()
    if reply.get("retcode") != 0:
        raise DemoError("inference failed: %s" % json.dumps(reply))
    report = {"model_id": new_model_id, "model_version": unify, "service_id": service_id,
              "archives": [{"role": r, "old_party_id": o, "new_party_id": n, "archive": p} for r, o, n, p in archives],
              "inference": reply["data"]}
    _write(workdir, "report.json", report)
    return report


def _write(workdir, name, data):
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(data, f, indent=2)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fate_sandbox.demo")
    parser.add_argument("--root", default=os.path.join(os.getcwd(), ".sandbox"))
    parser.add_argument("--cli", default="1.11.3", help="fate-client version to drive the sandbox with")
    args = parser.parse_args(argv)
    path = os.path.join(args.root, "federation.json")
    if not os.path.exists(path):
        print("no sandbox at %s: run `make sandbox` first" % args.root, file=sys.stderr)
        return 2
    with open(path) as f:
        federation = json.load(f)
    try:
        report = run(federation, args.cli)
    except DemoError as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
