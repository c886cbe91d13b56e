"""Fault injection for the FATE Flow emulator (tests only; nothing in plugins/ can reach it).

A test writes rules into `<party dir>/faults/flow.json` (the party dir is the parent of the FATE home,
`parties/<party id>/`); the emulator reads that file on every request, before routing, so rules take effect
at once and without a restart. No file, no fault. Each rule matches one exact request path and fires for its
next `times` requests (default 1; the count is decremented in the file, so a used-up rule is inert):

    {"path": "/v1/model/import", "times": 2, "status": 502}     # answer HTTP 502 (an nginx-like HTML page;
                                                                 # 500: Werkzeug's Internal Server Error page)
    {"path": "/v1/model/query", "times": 1, "delay": 8}         # answer normally, after 8 s (client timeouts)
    {"path": "/v1/model/migrate", "times": 1, "hold": "go"}     # answer normally once `faults/go.hold` is gone
                                                                 # (waits at most 120 s)
    {"path": "/v1/model/migrate/do", "times": 1, "retcode": 100, "retmsg": "..."}
                                                                 # answer HTTP 200 {"retcode", "retmsg"}

Every rule that fired is appended to `faults/hits.jsonl` ({"path", "rule"}), so a test can wait for a request
to arrive (`wait_hits`). `inject`, `clear`, `hold`/`release` and `hits` are the test side.
"""
import fcntl
import json
import os
import threading
import time

from fate_sandbox.flow import web

HOLD_LIMIT = 120
_LOCK = threading.Lock()
_STATUS_PAGES = {
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
         "</center>\r\n<hr><center>nginx/1.20.1</center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 "
         "Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx/1.20.1</center>\r\n</body>\r\n</html>\r\n",
    504: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out"
         "</h1></center>\r\n<hr><center>nginx/1.20.1</center>\r\n</body>\r\n</html>\r\n",
}


def fault_dir(fate_home):
    """`parties/<party id>/faults` for a party's FATE home."""
    return os.path.join(os.path.dirname(os.path.abspath(fate_home)), "faults")


def _rules_file(fate_home):
    return os.path.join(fault_dir(fate_home), "flow.json")


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


class _Locked:
    """flock on faults/.lock: the emulator and the test side never interleave read-modify-write."""

    def __init__(self, fate_home):
        self.path = os.path.join(fault_dir(fate_home), ".lock")

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# ------------------------------------------------------------------ test side
def inject(fate_home, *rules):
    """Add rules for the party whose FATE home is `fate_home`."""
    with _Locked(fate_home):
        path = _rules_file(fate_home)
        current = []
        if os.path.exists(path):
            with open(path) as handle:
                current = json.load(handle)
        _write_json(path, current + [dict(rule) for rule in rules])


def clear(fate_home):
    """Remove every rule, hold file and recorded hit of the party."""
    directory = fault_dir(fate_home)
    if not os.path.isdir(directory):
        return
    with _Locked(fate_home):
        for name in os.listdir(directory):
            if name != ".lock":
                os.unlink(os.path.join(directory, name))


def hold(fate_home, name):
    """Create the hold file `name`: requests matching a rule with "hold": name wait until `release`."""
    os.makedirs(fault_dir(fate_home), exist_ok=True)
    open(os.path.join(fault_dir(fate_home), "%s.hold" % name), "w").close()


def release(fate_home, name):
    path = os.path.join(fault_dir(fate_home), "%s.hold" % name)
    if os.path.exists(path):
        os.unlink(path)


def hits(fate_home):
    """The rules that fired, in order: [{"path", "rule"}]."""
    path = os.path.join(fault_dir(fate_home), "hits.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def wait_hits(fate_home, path, count=1, timeout=300, alive=None):
    """Wait until `count` rules on `path` fired; `alive()` returning False stops the wait early (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(1 for hit in hits(fate_home) if hit["path"] == path) >= count:
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------ emulator side
def take(fate_home, path):
    """The rule that fires for this request (its count decremented in the file), or None."""
    rules_file = _rules_file(fate_home)
    if not os.path.exists(rules_file):
        return None
    with _LOCK, _Locked(fate_home):
        try:
            with open(rules_file) as handle:
                rules = json.load(handle)
        except (OSError, ValueError):
            return None
        for rule in rules:
            if rule.get("path") == path.rstrip("/") and int(rule.get("times", 1)) > 0:
                rule["times"] = int(rule.get("times", 1)) - 1
                _write_json(rules_file, rules)
                with open(os.path.join(fault_dir(fate_home), "hits.jsonl"), "a") as handle:
                    handle.write(json.dumps({"path": path, "rule": rule}) + "\n")
                return rule
    return None


def apply(fate_home, rule):
    """Act on a rule: a Response to send instead of the real answer, or None to answer normally (after a
    delay or a hold)."""
    if rule.get("delay"):
        time.sleep(float(rule["delay"]))
    if rule.get("hold"):
        hold_file = os.path.join(fault_dir(fate_home), "%s.hold" % rule["hold"])
        deadline = time.time() + HOLD_LIMIT
        while os.path.exists(hold_file) and time.time() < deadline:
            time.sleep(0.05)
    status = rule.get("status")
    if status:
        status = int(status)
        if status in _STATUS_PAGES:
            return web.Response(status, _STATUS_PAGES[status].encode(), "text/html")
        return web.html_error(500) if status == 500 else web.Response(status, b"", "text/html")
    if "retcode" in rule:
        return web.jsonify({"retcode": int(rule["retcode"]), "retmsg": rule.get("retmsg", ""),
                            "data": rule.get("data", {})})
    return None
