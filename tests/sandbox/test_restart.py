"""Config is read at start only: an edited servings list takes effect after a supervisorctl restart."""
import os
import re
import subprocess
import sys
import time

import pytest
import requests

pytestmark = pytest.mark.timeout(300)


def supervisorctl(party, *args):
    sup = party["supervisor"]
    ctl = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
    return subprocess.run([ctl, "-c", sup["config"]] + list(args), capture_output=True, text=True, timeout=60,
                          check=False)


def wait_for_flow(party, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.post(party["flow_url"] + "/v1/server/version/get", json={}, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("flow of %s did not come back" % party["party_id"])


def load(fed, party_id):
    model = fed["model"]
    roles = {r: [str(p) for p in ids] for r, ids in model["roles"].items()}
    conf = {"initiator": {"party_id": str(party_id), "role": "guest"}, "role": roles,
            "job_parameters": {"model_id": model["model_id"], "model_version": model["deployed_version"]}}
    return requests.post(fed["parties"][str(party_id)]["flow_url"] + "/v1/model/load", json=conf, timeout=60).json()


def set_servings(path, hosts):
    """Replace the servings hosts of a 1.7+ service_conf.yaml in place, keeping every other byte."""
    with open(path) as f:
        text = f.read()
    new, count = re.subn(r"(?m)^(servings:\n  hosts:\n)((?:    - .*\n)+)",
                         lambda m: m.group(1) + "".join("    - %s\n" % h for h in hosts), text)
    assert count == 1, "servings block not found in %s" % path
    with open(path, "w") as f:
        f.write(new)


def test_edited_servings_take_effect_after_restart(sandbox):
    fed = sandbox(source="1.11", destination="1.8")
    guest = fed["parties"]["9999"]
    conf_path = guest["config_files"][0]
    with open(conf_path) as f:
        original = f.read()
    try:
        first = load(fed, 9999)
        assert first["retcode"] == 0, first
        set_servings(conf_path, ["127.0.0.1:9"])            # nothing listens there
        assert load(fed, 9999)["retcode"] == 0, "the running flow still uses the servings it started with"
        result = supervisorctl(guest, "restart", guest["supervisor"]["flow_program"])
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for_flow(guest)
        failed = load(fed, 9999)
        assert failed["retcode"] == 101 and failed["data"]["guest"]["9999"] == 100, failed
        other = fed["parties"]["10000"]["serving"]["grpc_address"]
        set_servings(conf_path, [other])
        result = supervisorctl(guest, "restart", guest["supervisor"]["flow_program"])
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for_flow(guest)
        assert load(fed, 9999)["retcode"] == 0, "load reaches the serving of the new list"
    finally:
        with open(conf_path, "w") as f:
            f.write(original)
        supervisorctl(guest, "restart", guest["supervisor"]["flow_program"])
        wait_for_flow(guest)
