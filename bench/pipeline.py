#!/usr/bin/env python3
"""Benchmark playbooks/pipeline.yml on sandbox federations (issue #8). Not a test: run it by hand.

    .venv/bin/python bench/pipeline.py [--quick] [--only compare,rerun,scale,memory] [--repeat 3]
                                       [--workdir /tmp/fate-bench-<uid>] [--keep]

Sections, each printing its figures, its ratio and its target (with the load average next to every figure):

  compare  the whole pipeline (migrate, transfer, import, load, bind, inference) on the default federation
           (9999 guest, 10000 host+arbiter -> 99, 100) with `ansible-playbook playbooks/pipeline.yml`, against
           bench/manual_pipeline.sh (the real `flow` CLI and `scp -3` between the party hosts' sshd) on the same
           sandbox and model, runs interleaved (pipeline, manual, pipeline, ...); target pipeline <= 1.0x script
  rerun    the pipeline with a 1 GiB model (--model-size 1G on every source party): first run, then a no-op rerun
           of the same version; target rerun <= 25 % of the first run, 0 bytes moved (the run report's bytes_moved)
  scale    the pipeline on 1, 4 and 16 party pairs (sandbox --pairs N) with the project's ansible.cfg forks,
           interleaved; target 16 pairs <= 3x 1 pair
  memory   peak RSS of the controller (ansible-playbook and every descendant, ssh clients included: the sum, and
           the largest process) and of each managed-side process (every process whose parent chain leads to a
           party host's sshd: module runs, model_transfer helpers), sampled from /proc every 0.1 s, for a
           100 MiB, 1 GiB and 4 GiB archive (--model-size on the source guest 9999); target flat

Every run gets its own migrated model version (so each pipeline run is a first run unless it is the rerun), a
fresh ControlPersist directory (closed afterwards: no run reuses another's SSH masters) and the repository's
ansible.cfg (forks, pipelining, ssh_args as shipped); the collection is staged from the working tree once. Per-task
times come from tests/sandbox/callback_plugins/fate_results.py. --quick: compare once, scale 1 and 4 pairs, memory
at 10 MiB and 100 MiB, rerun with 100 MiB (a smoke run of the bench itself, minutes). Needs the project's .venv,
openssh-server/-client, jq, bc, curl and the fate-client 1.11.3 venv (.cache/flow-cli, installed on first use).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(REPO, "sandbox")
TESTS = os.path.join(REPO, "tests", "sandbox")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
PLAYBOOK_BIN = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
PIPELINE = os.path.join(REPO, "playbooks", "pipeline.yml")
MANUAL = os.path.join(REPO, "bench", "manual_pipeline.sh")
MIB = 1 << 20
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
sys.path[:0] = [SANDBOX, TESTS]

from pipeline_inventory import write_inventory  # noqa: E402  (tests/sandbox: the inventories the tests use)
from fate_sandbox.federation import parse_size  # noqa: E402

# Each sandbox of the bench: its own subnet and port block (away from the default sandbox's 127.0.10/19380 and
# the tests' 127.100.x/21000+).
SANDBOXES = {
    "p1": {"subnet": "127.0.91", "base_port": 16000, "pairs": 1},
    "p2": {"subnet": "127.0.92", "base_port": 16100, "pairs": 2},
    "p4": {"subnet": "127.0.94", "base_port": 16200, "pairs": 4},
    "p16": {"subnet": "127.0.96", "base_port": 16300, "pairs": 16},
    "big": {"subnet": "127.0.98", "base_port": 16700, "pairs": 2},
    "mem": {"subnet": "127.0.99", "base_port": 16800, "pairs": 2},
}


def load():
    with open("/proc/loadavg") as f:
        return "load %s" % " ".join(f.read().split()[:3])


def log(message):
    print(message, flush=True)


def human(size):
    if size >= 1 << 30 and size % (1 << 30) == 0:
        return "%d GiB" % (size >> 30)
    return "%d MiB" % (size >> 20)


# ------------------------------------------------------------------------------------------------------------
# /proc sampling
# ------------------------------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid):
    """utime + stime of a process so far."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def service_pids(fed):
    """The FATE Flow and FATE-Serving emulator processes (children of each party's supervisord)."""
    pids = []
    for party in fed["parties"].values():
        try:
            with open(party["supervisor"]["pid_file"]) as f:
                sv = int(f.read().strip())
        except (OSError, ValueError):
            continue
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open("/proc/%s/stat" % name, "rb") as f:
                        if int(f.read().rsplit(b")", 1)[1].split()[1]) == sv:
                            pids.append(int(name))
                except (OSError, ValueError, IndexError):
                    pass
    return pids


def _processes():
    """{pid: (ppid, rss KiB, command, cpu seconds)} of every process now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            with open("/proc/%s/statm" % name, "rb") as f:
                rss = int(f.read().split()[1]) * PAGE_KIB
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        fields = stat.rsplit(b")", 1)[1].split()
        out[int(name)] = (int(fields[1]), rss, cmd, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def _short(cmd):
    """A process's kind, for the table: the Ansible module or helper it runs, else its program."""
    for marker in ("AnsiballZ_", "ansible_"):
        at = cmd.find(marker)
        if at >= 0:
            return cmd[at:].split()[0].split("/")[-1][:48]
    if "model_transfer" in cmd or "fate_flow_transfer" in cmd:
        return "model_transfer helper"
    words = cmd.split()
    if not words:
        return "?"
    if os.path.basename(words[0]).startswith("python") and len(words) > 1:
        return "python " + " ".join(w for w in words[1:3])[:60]
    return os.path.basename(words[0])[:40]


class Sampler(threading.Thread):
    """Peaks of the controller tree (root pid and descendants) and of processes under the party hosts' sshd."""

    def __init__(self, root_pid, sshd_pids, interval=0.1):
        super().__init__(daemon=True)
        self.root_pid, self.sshd = root_pid, dict(sshd_pids)   # {sshd pid: party address}
        self.interval = interval
        self.stop_event = threading.Event()
        self.controller_sum = self.controller_max = 0
        self.controller_max_cmd = ""
        self.managed = {}           # kind -> peak RSS KiB of one process
        self.managed_party_sum = 0  # peak of the sum over one party host's processes
        self.managed_cpu = {}       # pid -> CPU seconds last seen (processes shorter than a sample are missed)
        self.samples = 0

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self):
        procs = _processes()
        children = {}
        for pid, (ppid, _, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        # controller: the tree under ansible-playbook / the script
        tree, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            if pid in procs:
                tree.append(pid)
                todo.extend(children.get(pid, []))
        total = sum(procs[p][1] for p in tree)
        self.controller_sum = max(self.controller_sum, total)
        for p in tree:
            if procs[p][1] > self.controller_max:
                self.controller_max, self.controller_max_cmd = procs[p][1], _short(procs[p][2])
        # managed side: descendants of each party host's sshd (not the listener itself)
        for sshd in self.sshd:
            party_total, todo = 0, list(children.get(sshd, []))
            while todo:
                pid = todo.pop()
                ppid, rss, cmd, cpu = procs[pid]
                todo.extend(children.get(pid, []))
                self.managed_cpu[pid] = max(self.managed_cpu.get(pid, 0.0), cpu)
                if cmd.startswith("sshd:"):
                    continue        # the per-connection sshd processes (their CPU counts, not their memory)
                party_total += rss
                kind = _short(cmd)
                self.managed[kind] = max(self.managed.get(kind, 0), rss)
            self.managed_party_sum = max(self.managed_party_sum, party_total)
        self.samples += 1

    def stop(self):
        self.stop_event.set()
        self.join(5)
        return self


def cpu_of(sampler):
    return {"controller": sampler.cpu_controller, "managed": sampler.cpu_managed, "services": sampler.cpu_services}


def cpu_text(cpu):
    return "CPU %.1f s (controller %.1f, party hosts %.1f, FATE emulators %.1f)" % (
        sum(cpu.values()), cpu["controller"], cpu["managed"], cpu["services"])


class PipelineFailed(SystemExit):
    def summary(self):
        text = str(self.args[0])
        at = text.find('"msg": ')
        return text[at + 7:at + 400] if at >= 0 else text.splitlines()[0]


# ------------------------------------------------------------------------------------------------------------
# sandboxes, inventories, runs
# ------------------------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.abspath(args.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.started = {}
        self.collections = None
        self.counter = 0
        self.results = {}

    def sandbox(self, name, model_size=0, model_size_parties=None):
        spec = SANDBOXES[name]
        root = os.path.join(self.workdir, name)
        args = [PYTHON, "-m", "fate_sandbox", "start", "--root", root, "--subnet", spec["subnet"],
                "--base-port", str(spec["base_port"]), "--pairs", str(spec["pairs"]), "--timeout", "180"]
        if model_size:
            args += ["--model-size", str(model_size)]
            for pid in model_size_parties or []:
                args += ["--model-size-party", pid]
        env = dict(os.environ, PYTHONPATH=SANDBOX)
        if model_size:
            # FATE Flow's remote_request_timeout (30 s) is too short to migrate a gigabyte model on this machine; an
            # operator raises it in job_default_config.yaml, the sandbox takes it from the environment.
            env.setdefault("FATE_SANDBOX_REMOTE_REQUEST_TIMEOUT", "1800")
        begin = time.monotonic()
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit("sandbox %s did not start:\n%s%s" % (name, proc.stdout, proc.stderr))
        with open(os.path.join(root, "federation.json")) as f:
            fed = json.load(f)
        if "nothing started" in proc.stdout and fed["options"].get("model_size", 0) != model_size:
            self.stop(name)
            return self.sandbox(name, model_size, model_size_parties)
        self.started[name] = root
        log("  sandbox %s: %d parties up in %.0f s (%s)" % (name, len(fed["parties"]), time.monotonic() - begin,
                                                            load()))
        inventory = write_inventory(fed, os.path.join(self.workdir, "inventory-%s" % name))
        return fed, inventory

    def stop(self, name, wipe=False):
        root = os.path.join(self.workdir, name)
        subprocess.run([PYTHON, "-m", "fate_sandbox", "stop", "--root", root],
                       env=dict(os.environ, PYTHONPATH=SANDBOX), capture_output=True, text=True, timeout=300)
        self.started.pop(name, None)
        if wipe:
            shutil.rmtree(root, ignore_errors=True)

    def stop_all(self):
        for name in list(self.started):
            self.stop(name)

    def stage(self):
        if self.collections is None:
            self.collections = os.path.join(self.workdir, "collections")
            subprocess.run([PYTHON, os.path.join(REPO, "scripts", "lib", "stage_collection.py"), "--source", REPO,
                            "--dest", os.path.join(self.collections, "ansible_collections", "fate", "flow")],
                           check=True, capture_output=True, timeout=300)
        return self.collections

    @staticmethod
    def sshd_pids(fed):
        out = {}
        for party in fed["parties"].values():
            pid_file = os.path.join(fed["root"], "ssh", "hosts", party["address"], "sshd.pid")
            try:
                with open(pid_file) as f:
                    out[int(f.read().strip())] = party["address"]
            except (OSError, ValueError):
                pass
        return out

    def _monitored(self, args, env, cwd, fed, timeout=3600):
        """Run a command; returns (rc, output, wall seconds, sampler). The sampler also carries the CPU seconds:
        cpu_controller (the command and every descendant it waited for, exact), cpu_managed (processes under the
        party hosts' sshd, sampled) and cpu_services (the FATE Flow / serving emulators, exact)."""
        services = service_pids(fed)
        services_before = sum(_cpu_seconds(p) for p in services)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        begin = time.monotonic()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = Sampler(proc.pid, self.sshd_pids(fed))
        sampler.start()
        try:
            output, _ = proc.communicate(timeout=timeout)
        except BaseException:       # Ctrl-C, timeout: end the run we started, then stop the sandboxes
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            sampler.stop()
        seconds = time.monotonic() - begin
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler.cpu_controller = (children.ru_utime + children.ru_stime) - \
            (children_before.ru_utime + children_before.ru_stime)
        sampler.cpu_managed = sum(sampler.managed_cpu.values())
        sampler.cpu_services = sum(_cpu_seconds(p) for p in services) - services_before
        return proc.returncode, output, seconds, sampler

    def pipeline(self, fed, inventory, label, version=None, extra_env=None):
        """One ansible-playbook playbooks/pipeline.yml run; returns a dict of figures."""
        self.counter += 1
        version = version or "bench_%s_%d_%d" % (label, os.getpid(), self.counter)
        run_dir = os.path.join(self.workdir, "runs", "%03d_%s" % (self.counter, label))
        os.makedirs(run_dir, exist_ok=True)
        cp_dir = tempfile.mkdtemp(prefix="cp", dir="/tmp")     # short: ControlPath must fit a unix socket
        results = os.path.join(run_dir, "results.json")
        report_dir = os.path.join(self.workdir, "reports")
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
        env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=self.stage(),
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(TESTS, "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="fate_results", FATE_RESULTS_FILE=results,
                   ANSIBLE_SSH_CONTROL_PATH_DIR=cp_dir, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=os.path.join(run_dir, "tmp"))
        env.update(extra_env or {})
        args = [PLAYBOOK_BIN, "-i", inventory, PIPELINE, "-e", "fate_unify_model_version=%s" % version,
                "-e", "fate_report_dir=%s" % report_dir, "-e", "fate_report_name=%s" % version]
        load_before = load()
        try:
            rc, output, seconds, sampler = self._monitored(args, env, run_dir, fed)
        finally:
            for name in os.listdir(cp_dir):     # close the SSH masters of this run
                subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(cp_dir, name), "-O", "exit", "x"],
                               capture_output=True, timeout=30)
            shutil.rmtree(cp_dir, ignore_errors=True)
        with open(os.path.join(run_dir, "output.log"), "w") as f:
            f.write(output)
        if rc != 0:
            raise PipelineFailed("pipeline run %s failed (rc %d):\n%s" % (label, rc, output[-6000:]))
        with open(os.path.join(report_dir, version + ".json")) as f:
            report = json.load(f)
        tasks = {}
        try:
            with open(results) as f:
                for entry in json.load(f)["tasks"]:
                    tasks[entry["name"]] = max(tasks.get(entry["name"], 0), entry["seconds"])
        except (OSError, ValueError):
            pass
        return {"seconds": seconds, "load": load_before, "version": version, "bytes_moved": report["bytes_moved"],
                "tasks": tasks, "sampler": sampler, "report": report, "cpu": cpu_of(sampler)}

    def manual(self, fed, label):
        self.counter += 1
        version = "manual_%s_%d_%d" % (label, os.getpid(), self.counter)
        run_dir = os.path.join(self.workdir, "runs", "%03d_%s" % (self.counter, label))
        load_before = load()
        rc, output, seconds, sampler = self._monitored(
            ["bash", MANUAL, os.path.join(fed["root"], "federation.json"), run_dir, version], dict(os.environ),
            REPO, fed)
        if rc != 0:
            raise SystemExit("manual run failed (rc %d):\n%s" % (rc, output[-4000:]))
        steps = {}
        total = seconds
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "step":
                steps[parts[1]] = float(parts[2])
            elif len(parts) == 2 and parts[0] == "total":
                total = float(parts[1])       # after the CLI venv's lock was taken
        return {"seconds": total, "wall": seconds, "load": load_before, "steps": steps, "sampler": sampler,
                "cpu": cpu_of(sampler)}

    # --------------------------------------------------------------------------------------------------------
    # sections
    # --------------------------------------------------------------------------------------------------------

    def compare(self):
        log("\n== compare: playbooks/pipeline.yml vs bench/manual_pipeline.sh (flow CLI + scp), default "
            "federation (9999, 10000 -> 99, 100) ==")
        subprocess.run([PYTHON, "-c", "import sys; sys.path.insert(0, %r); from fate_sandbox.flowcli import ensure; "
                        "ensure('1.11.3')" % SANDBOX], check=True, timeout=1800)
        fed, inventory = self.sandbox("p2")
        pipe, manual = [], []
        for i in range(self.args.repeat):
            order = ("pipeline", "manual") if i % 2 == 0 else ("manual", "pipeline")
            for kind in order:
                if kind == "pipeline":
                    r = self.pipeline(fed, inventory, "compare")
                    pipe.append(r)
                    log("  pipeline run %d: %6.1f s, %s  (%s)" % (len(pipe), r["seconds"], cpu_text(r["cpu"]),
                                                                     r["load"]))
                else:
                    r = self.manual(fed, "compare")
                    manual.append(r)
                    log("  manual   run %d: %6.1f s, %s  (%s)  steps: %s" % (
                        len(manual), r["seconds"], cpu_text(r["cpu"]), r["load"],
                        ", ".join("%s %.1f" % kv for kv in r["steps"].items())))
        ratios = [p["seconds"] / m["seconds"] for p, m in zip(pipe, manual)]
        p_med = statistics.median(r["seconds"] for r in pipe)
        m_med = statistics.median(r["seconds"] for r in manual)
        p_cpu = statistics.median(sum(r["cpu"].values()) for r in pipe)
        m_cpu = statistics.median(sum(r["cpu"].values()) for r in manual)
        log("  median pipeline %.1f s, manual %.1f s: pipeline/manual %.2fx (per pair: %s); target <= 1.0x: %s"
            % (p_med, m_med, p_med / m_med, ", ".join("%.2f" % r for r in ratios),
               "MET" if p_med <= m_med else "NOT MET"))
        log("  median CPU pipeline %.1f s, manual %.1f s: %.2fx (CPU is what a loaded machine turns into wall time)"
            % (p_cpu, m_cpu, p_cpu / m_cpu))
        slow = sorted(pipe[-1]["tasks"].items(), key=lambda kv: -kv[1])[:12]
        log("  slowest tasks of the last pipeline run (s, slowest host):")
        for name, seconds in slow:
            log("    %6.2f  %s" % (seconds, name))
        log("  task time total %.1f s of %.1f s wall (the rest: start-up, play/role set-up, callbacks)"
            % (sum(pipe[-1]["tasks"].values()), pipe[-1]["seconds"]))
        self.results["compare"] = {"pipeline": [r["seconds"] for r in pipe], "manual": [r["seconds"] for r in manual],
                                   "ratio": p_med / m_med, "pipeline_cpu": [r["cpu"] for r in pipe],
                                   "manual_cpu": [r["cpu"] for r in manual], "cpu_ratio": p_cpu / m_cpu}
        self.stop("p2")

    def rerun(self):
        size = parse_size(self.args.rerun_size) if self.args.rerun_size else (100 * MIB) if self.args.quick else (1 << 30)
        log("\n== rerun: first run vs no-op rerun, %s model on every source party ==" % human(size))
        fed, inventory = self.sandbox("big", model_size=size)
        first = self.pipeline(fed, inventory, "rerun_first")
        log("  first run: %6.1f s, %d bytes moved, %s  (%s)" % (first["seconds"], first["bytes_moved"],
                                                               cpu_text(first["cpu"]), first["load"]))
        again = self.pipeline(fed, inventory, "rerun_noop", version=first["version"])
        log("  rerun:     %6.1f s, %d bytes moved, %s  (%s)" % (again["seconds"], again["bytes_moved"],
                                                               cpu_text(again["cpu"]), again["load"]))
        ratio = again["seconds"] / first["seconds"]
        statuses = sorted(set((p["migrate_status"], p["transfer_status"], p["import_status"])
                              for p in again["report"]["parties"]))
        log("  rerun/first %.0f %% (target <= 25 %%: %s); bytes moved on rerun %d (target 0: %s); statuses %s"
            % (100 * ratio, "MET" if ratio <= 0.25 else "NOT MET", again["bytes_moved"],
               "MET" if again["bytes_moved"] == 0 else "NOT MET", statuses))
        slow = sorted(again["tasks"].items(), key=lambda kv: -kv[1])[:8]
        log("  slowest tasks of the rerun:")
        for name, seconds in slow:
            log("    %6.2f  %s" % (seconds, name))
        self.results["rerun"] = {"first": first["seconds"], "rerun": again["seconds"], "ratio": ratio,
                                 "bytes_moved": again["bytes_moved"]}
        self.stop("big", wipe=True)

    def scale(self):
        names = ["p1", "p4"] if self.args.quick else ["p1", "p4", "p16"]
        log("\n== scale: 1, 4%s party pairs, forks from ansible.cfg ==" % ("" if self.args.quick else ", 16"))
        feds = {name: self.sandbox(name) for name in names}
        times = {name: [] for name in names}
        other_forks = []
        for i in range(self.args.repeat if not self.args.quick else 1):
            for name in (names if i % 2 == 0 else list(reversed(names))):
                fed, inventory = feds[name]
                r = self.pipeline(fed, inventory, name)
                times[name].append(r["seconds"])
                log("  %3d pairs: %6.1f s, %s  (%s)" % (SANDBOXES[name]["pairs"], r["seconds"], cpu_text(r["cpu"]),
                                                       r["load"]))
                if self.args.scale_forks and name == names[-1]:
                    r = self.pipeline(fed, inventory, name + "_forks", extra_env={
                        "ANSIBLE_FORKS": str(self.args.scale_forks)})
                    other_forks.append(r["seconds"])
                    log("  %3d pairs, forks %d: %6.1f s, %s  (%s)" % (
                        SANDBOXES[name]["pairs"], self.args.scale_forks, r["seconds"], cpu_text(r["cpu"]), r["load"]))
        if other_forks:
            log("  %d pairs with forks %d: median %.1f s (ansible.cfg's forks: %.1f s)" % (
                SANDBOXES[names[-1]]["pairs"], self.args.scale_forks, statistics.median(other_forks),
                statistics.median(times[names[-1]])))
        med = {name: statistics.median(v) for name, v in times.items()}
        last = names[-1]
        ratio = med[last] / med["p1"]
        log("  medians: %s; %d pairs / 1 pair = %.2fx (target <= 3x: %s)" % (
            ", ".join("%d pairs %.1f s" % (SANDBOXES[n]["pairs"], med[n]) for n in names), SANDBOXES[last]["pairs"],
            ratio, "MET" if ratio <= 3 else "NOT MET"))
        self.results["scale"] = {"medians": med, "ratio": ratio}
        for name in names:
            self.stop(name)

    def memory(self):
        sizes = [parse_size(t) for t in self.args.memory_sizes.split(",")] if self.args.memory_sizes else \
            [10 * MIB, 100 * MIB] if self.args.quick else [100 * MIB, 1 << 30, 4 << 30]
        log("\n== memory: peak RSS as the archive grows (--model-size on source guest 9999) ==")
        rows = []
        for size in sizes:
            fed, inventory = self.sandbox("mem", model_size=size, model_size_parties=["9999"])
            try:
                r = self.pipeline(fed, inventory, "mem_%d" % (size >> 20))
            except PipelineFailed as exc:
                log("  %-8s pipeline FAILED (%s): %s" % (human(size), load(), exc.summary()))
                self.stop("mem", wipe=True)
                continue
            s = r["sampler"]
            rows.append((size, r, s))
            log("  %-8s %6.1f s  controller sum %5.0f MiB, largest %4.0f MiB (%s); managed largest %4.0f MiB, "
                "largest party sum %4.0f MiB; %d samples  (%s)" % (
                    human(size), r["seconds"], s.controller_sum / 1024, s.controller_max / 1024,
                    s.controller_max_cmd, max(s.managed.values() or [0]) / 1024, s.managed_party_sum / 1024,
                    s.samples, r["load"]))
            self.stop("mem", wipe=True)
        kinds = sorted(set(k for _, _, s in rows for k in s.managed))
        log("  managed-side processes, peak RSS MiB per archive size (%s):" % ", ".join(human(r[0]) for r in rows))
        for kind in kinds:
            log("    %-50s %s" % (kind, "  ".join("%6.1f" % (s.managed.get(kind, 0) / 1024) for _, _, s in rows)))
        if len(rows) < 2:
            log("  fewer than two sizes ran: no growth figure")
            return
        first, last = rows[0][2], rows[-1][2]
        growth_c = last.controller_sum / max(first.controller_sum, 1)
        growth_m = max(last.managed.values() or [0]) / max(max(first.managed.values() or [1]), 1)
        flat = growth_c <= 1.25 and growth_m <= 1.25
        log("  %s -> %s: controller sum x%.2f, largest managed process x%.2f (target flat, <= x1.25: %s)" % (
            human(rows[0][0]), human(rows[-1][0]), growth_c, growth_m, "MET" if flat else "NOT MET"))
        self.results["memory"] = {human(size): {"controller_sum_mib": s.controller_sum / 1024,
                                                "controller_max_mib": s.controller_max / 1024,
                                                "managed": {k: v / 1024 for k, v in s.managed.items()}}
                                  for size, _, s in rows}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of the bench (small sizes, fewer runs)")
    parser.add_argument("--only", default="compare,rerun,scale,memory",
                        help="comma-separated sections (compare, rerun, scale, memory)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (compare, scale)")
    parser.add_argument("--workdir", default=os.path.join("/tmp", "fate-bench-%d" % os.getuid()))
    parser.add_argument("--rerun-size", default="", metavar="SIZE", help="rerun: model size (default 1G)")
    parser.add_argument("--memory-sizes", default="", metavar="S1,S2,...",
                        help="memory: archive sizes (default 100M,1G,4G)")
    parser.add_argument("--scale-forks", type=int, default=0, metavar="N",
                        help="scale: also run the largest federation with ANSIBLE_FORKS=N, interleaved")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (sandboxes are stopped either way)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 1)
    bench = Bench(args)
    started = time.monotonic()
    log("bench/pipeline.py %s, %s, %d CPUs, %s, repeat %d" % (
        " ".join(sys.argv[1:]) or "(full)", time.strftime("%Y-%m-%d %H:%M %Z"), os.cpu_count(), load(),
        args.repeat))
    try:
        for section in [s.strip() for s in args.only.split(",") if s.strip()]:
            getattr(bench, section)()
    finally:
        bench.stop_all()
        if not args.keep:
            shutil.rmtree(os.path.join(bench.workdir, "runs"), ignore_errors=True)
    log("\nbench done in %.0f s (%s)" % (time.monotonic() - started, load()))
    with open(os.path.join(bench.workdir, "results.json"), "w") as f:
        json.dump(bench.results, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
