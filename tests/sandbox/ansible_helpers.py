"""Run ansible-playbook against the sandbox federation from pytest (tests/sandbox/test_modules_*.py).

    from ansible_helpers import run_playbook, hash_tree

    run = run_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": [...]}],
                       extra_vars={"fed": fed}, check=False, verbosity=0)
    run.rc, run.task("Migrate")["result"]["parties"], run.output

    # several sandboxes at once: one local host per sandbox, tasks run on all of them in parallel
    run = run_playbook(tmp_path, [play(tasks, hosts="all")], inventory=local_hosts({"a": {"fed": fed_a}, ...}))
    run.task("Migrate", host="a")

* The collection is staged as it ships (scripts/lib/stage_collection.py) once per test process into a
  private directory, so concurrent stagings into build/ by other sessions cannot race with these tests.
* The host is `localhost` with ansible_connection=local and the venv's python (interpreter discovery picks a
  broken pyenv shim on these machines); the modules talk HTTP to each party's FATE Flow from there.
* ansible-core 2.19 has no JSON stdout callback: the aggregate callback tests/sandbox/callback_plugins/
  fate_results.py writes every task's result to a JSON file, read back here. The screen output (default
  callback, `verbosity` -v's) is kept in `run.output` for assertions on what a user would see.
* A playbook is YAML text, or a Python list of plays (written as JSON, which is YAML).
"""
import atexit
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading

from conftest import PYTHON, REPO

HERE = os.path.dirname(os.path.abspath(__file__))
CALLBACK_DIR = os.path.join(HERE, "callback_plugins")
PLAYBOOK_BIN = os.path.join(os.path.dirname(PYTHON), "ansible-playbook")
DOC_BIN = os.path.join(os.path.dirname(PYTHON), "ansible-doc")

_STAGE_LOCK = threading.Lock()
_STAGED = {}


def staged_collections():
    """ANSIBLE_COLLECTIONS_PATH holding ansible_collections/fate/flow as shipped (staged once per process)."""
    with _STAGE_LOCK:
        if "path" not in _STAGED:
            root = tempfile.mkdtemp(prefix="fate-flow-collections-")
            atexit.register(shutil.rmtree, root, True)
            dest = os.path.join(root, "ansible_collections", "fate", "flow")
            proc = subprocess.run([PYTHON, os.path.join(REPO, "scripts", "lib", "stage_collection.py"),
                                   "--source", REPO, "--dest", dest], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError("staging the collection failed:\n%s%s" % (proc.stdout, proc.stderr))
            _STAGED["path"] = root
        return _STAGED["path"]


def ansible_env(workdir, **extra):
    """Environment for ansible-playbook / ansible-doc: the staged collection, the results callback, no
    FATE_FLOW_* or proxy settings leaking in from the caller."""
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith(("FATE_FLOW_", "ANSIBLE_")) and k.lower() not in (
                   "http_proxy", "https_proxy", "all_proxy", "no_proxy", "pythonpath"))
    cfg = os.path.join(workdir, "ansible.cfg")
    if not os.path.exists(cfg):
        with open(cfg, "w") as handle:
            # The project's own settings (ansible.cfg): pipelining and connection reuse over SSH, no -C.
            handle.write("[defaults]\ngathering = explicit\nretry_files_enabled = False\n"
                         "interpreter_python = %s\n[connection]\npipelining = True\n[ssh_connection]\n"
                         "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n" % PYTHON)
    env.update(ANSIBLE_CONFIG=cfg, ANSIBLE_COLLECTIONS_PATH=staged_collections(),
               ANSIBLE_CALLBACK_PLUGINS=CALLBACK_DIR, ANSIBLE_CALLBACKS_ENABLED="fate_results",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=os.path.join(workdir, ".ansible-tmp"),
               ANSIBLE_DEPRECATION_WARNINGS="0")
    env.update(extra)
    return env


class PlaybookRun(object):
    """The outcome of one ansible-playbook run."""

    def __init__(self, rc, tasks, stats, output, args):
        self.rc, self.tasks, self.stats, self.output, self.args = rc, tasks, stats, output, args

    def __iter__(self):             # rc, results = run_playbook(...)
        return iter((self.rc, self.results))

    @property
    def results(self):
        """{task name: entry} (the last entry of a name wins; with several hosts, {(host, name): entry})."""
        hosts = set(entry["host"] for entry in self.tasks)
        if len(hosts) > 1:
            return dict(((entry["host"], entry["name"]), entry) for entry in self.tasks)
        return dict((entry["name"], entry) for entry in self.tasks)

    def task(self, name, host=None):
        """The entry of the task called `name` (on `host`): {name, action, host, status, ignore_errors, seconds,
        result}."""
        found = [entry for entry in self.tasks if entry["name"] == name and host in (None, entry["host"])]
        assert found, "no task %r ran on %s; tasks: %s\n%s" % (
            name, host or "any host", [(e["host"], e["name"]) for e in self.tasks], self.output)
        return found[-1]

    def result(self, name, host=None):
        return self.task(name, host)["result"]

    def for_host(self, host):
        """The same run seen from one host only."""
        return PlaybookRun(self.rc, [e for e in self.tasks if e["host"] == host], {host: self.stats.get(host)},
                           self.output, self.args)

    def __repr__(self):
        return "PlaybookRun(rc=%d, %s)\n%s" % (self.rc, [(e["host"], e["name"], e["status"]) for e in self.tasks],
                                               self.output)


def local_hosts(hostvars):
    """An inventory (dict, for run_playbook) of local hosts: {name: {var: value}} -> every host on the local
    connection with the venv's python. Ansible runs each task on all of them at once (forks), which is how
    several sandboxes are driven in parallel by one ansible-playbook."""
    hosts = {}
    for name, variables in hostvars.items():
        hosts[name] = dict(variables, ansible_connection="local", ansible_python_interpreter=PYTHON)
    return {"all": {"hosts": hosts}}


def run_playbook(workdir, playbook, extra_vars=None, check=False, diff=False, verbosity=0, env=None,
                 inventory=None, timeout=300, name="playbook"):
    """Run `playbook` (YAML text, a list of plays, or the path of a file) with ansible-playbook in `workdir`.

    `inventory`: INI text, or a dict (YAML inventory structure, see local_hosts); default: localhost on the local
    connection with the venv's python. Returns a PlaybookRun.
    """
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    if isinstance(playbook, str) and os.path.isfile(playbook):
        path = playbook
    else:
        path = os.path.join(workdir, "%s.yml" % name)
        with open(path, "w") as handle:
            handle.write(playbook if isinstance(playbook, str) else json.dumps(playbook, indent=1))
    if isinstance(inventory, dict):
        inv = os.path.join(workdir, "inventory.json")       # JSON is YAML: the yaml inventory plugin reads it
        with open(inv, "w") as handle:
            json.dump(inventory, handle, indent=1)
    else:
        inv = os.path.join(workdir, "inventory.ini")
        with open(inv, "w") as handle:
            handle.write(inventory or "localhost ansible_connection=local ansible_python_interpreter=%s\n" % PYTHON)
    results_file = os.path.join(workdir, "%s.results.json" % name)
    if os.path.exists(results_file):
        os.unlink(results_file)
    args = [PLAYBOOK_BIN, "-i", inv, path]
    if extra_vars:
        vars_file = os.path.join(workdir, "%s.vars.json" % name)
        with open(vars_file, "w") as handle:
            json.dump(extra_vars, handle)
        args += ["-e", "@" + vars_file]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbosity:
        args.append("-" + "v" * verbosity)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=workdir,
                          env=ansible_env(workdir, FATE_RESULTS_FILE=results_file, **(env or {})))
    output = proc.stdout + proc.stderr
    tasks, stats = [], {}
    if os.path.exists(results_file):
        with open(results_file) as handle:
            data = json.load(handle)
        tasks, stats = data["tasks"], data["stats"]
    return PlaybookRun(proc.returncode, tasks, stats, output, args)


def ansible_doc(workdir, *args):
    """Run ansible-doc with the staged collection; returns the CompletedProcess."""
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    return subprocess.run([DOC_BIN] + list(args), capture_output=True, text=True, timeout=120, cwd=workdir,
                          env=ansible_env(workdir))


def play(tasks, module_defaults=None, name="fate.flow modules", hosts="localhost"):
    """One play (on localhost by default)."""
    result = {"name": name, "hosts": hosts, "gather_facts": False, "tasks": tasks}
    if module_defaults:
        result["module_defaults"] = module_defaults
    return result


# ------------------------------------------------------------------------------------ FATE home state

def hash_tree(*roots):
    """{path: sha256} of every file under `roots` (missing roots give nothing)."""
    digests = {}
    for root in roots:
        for directory, _dirs, files in os.walk(root):
            for filename in files:
                path = os.path.join(directory, filename)
                with open(path, "rb") as handle:
                    digests[path] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def model_state(fed):
    """What a module that changes models could change on any party: every file (path and sha256) under each
    party's model_local_cache and temp dir. Logs and the Flow databases are not included (reads write them)."""
    state = {}
    for party in fed["parties"].values():
        state.update(hash_tree(party["model_local_cache"], party["temp_dir"]))
    return state


def _db_file(party):
    for candidate in ("fate_flow_sqlite.db", os.path.join("fateflow", "fate_sqlite.db")):
        path = os.path.join(party["fate_home"], candidate)
        if os.path.exists(path):
            return path
    return None


def db_rows(party):
    """The party's model table (t_machine_learning_model_info in the Flow's SQLite file), read-only (the sandbox
    roots hold a '#', hence the quoted URI), as sorted
    (role, party_id, model_id, model_version, loaded_times, imported, archive_sha256) tuples; timestamps left out."""
    import sqlite3
    from urllib.parse import quote
    path = _db_file(party)
    if path is None:
        return []
    conn = sqlite3.connect("file:%s?mode=ro" % quote(path), uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT f_role, f_party_id, f_model_id, f_model_version, f_loaded_times, f_imported, "
                            "f_archive_sha256 FROM t_machine_learning_model_info").fetchall()
    finally:
        conn.close()
    return sorted(tuple("" if v is None else str(v) for v in row) for row in rows)


def federation_state(fed):
    """model_state plus every party's model table: what check mode must leave untouched."""
    return {"files": model_state(fed),
            "db": dict((pid, db_rows(party)) for pid, party in fed["parties"].items())}
