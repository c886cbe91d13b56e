#!/usr/bin/env python3
"""Benchmark fate.flow.model_transfer against the usual ways of moving a file between two hosts.

    .venv/bin/python bench/transfer.py [--sizes 100M,1G,4G] [--repeat 1] [--workdir DIR]
                                       [--port 2299] [--net 127.0.88] [--skip fetch_copy] [--shuffle]

Starts two sshd on loopback addresses (sandbox/fate_sandbox/ssh.py), writes random archives of each
size on "src", and moves each one to "dst" with:

  plugin      ansible-playbook running fate.flow.model_transfer (transfer_mode=relay, defaults)
  ssh_pipe    ssh src 'cat -- FILE' | ssh dst 'cat > OUT'   (no compression, ssh's default ciphers)
  ssh_pipe_aes  the same with the plugin's default cipher preference (stream_ciphers, AES-GCM first)
  scp3        scp -3 src:FILE dst:OUT                        (through the controller)
  fetch_copy  ansible.builtin.fetch to the controller, then ansible.builtin.copy to dst, with Ansible's
              stock ssh settings (ssh_args "-C -o ControlMaster=auto -o ControlPersist=60s"); the bench
              checks in its -vvv output that every ssh it ran had -C

The two Ansible methods get a fresh ControlPersist directory for every run, and the masters left in
it are closed (ssh -O exit) when the run ends: a master opened by one method (e.g. without -C) is
never reused by the next one.

For each run it records the wall time of the whole command, MiB/s, for the two Ansible methods also
the time of their task(s) as a playbook reports it (tests/sandbox/callback_plugins/fate_results.py:
from the task's start to its result, i.e. without ansible-playbook's start-up, as a task of a longer
playbook such as the pipeline costs), and the peak memory of the
controller-side process tree: the sum of VmRSS of the command and all its descendants (Ansible's
workers and the ssh clients included), sampled every 200 ms from /proc, plus the largest single
process (getrusage RUSAGE_CHILDREN ru_maxrss, measured in a fresh subprocess per run). Prints one
table per size and the ratios the plugin is judged on. Needs root or the current user's own sshd
(see fate_sandbox.ssh), openssh-server and -client, and the project's .venv. Not part of the tests.
"""
import argparse
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(REPO, "sandbox")
CALLBACKS = os.path.join(REPO, "tests", "sandbox", "callback_plugins")  # fate_results: per-task seconds
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MIB = 1024 * 1024
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
METHODS = ("plugin", "ssh_pipe", "ssh_pipe_aes", "scp3", "fetch_copy")
# the plugin's default stream_ciphers (plugins/action/model_transfer.py STREAM_CIPHERS)
STREAM_CIPHERS = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                  "aes128-ctr,aes192-ctr,aes256-ctr")

# Runs one command in a fresh interpreter and prints the largest RSS among the processes it waited
# for (transitively): RUSAGE_CHILDREN's ru_maxrss is a maximum, not a sum.
MAXRSS_WRAPPER = r'''
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("MAXRSS_KIB=%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(rc)
'''


def parse_size(text):
    text = text.strip().upper().rstrip("B").rstrip("I")
    factor = {"K": 1024, "M": MIB, "G": 1024 * MIB}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "KMG" else text) * factor)


def human(size):
    if size >= 1024 * MIB and size % (1024 * MIB) == 0:
        return "%d GiB" % (size // (1024 * MIB))
    return "%d MiB" % (size // MIB)


def _rss_kib(pid):
    try:
        with open("/proc/%d/statm" % pid, encoding="ascii") as handle:
            return int(handle.read().split()[1]) * PAGE_KIB
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss_kib(root_pid):
    """Sum of the resident set sizes (KiB) of root_pid and all its descendants (by parent pid)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        todo.extend(children.get(pid, []))
    return total


def measure(argv, env=None, cwd=None):
    """Run argv; returns (seconds, peak tree RSS MiB, largest process RSS MiB, rc, output)."""
    wrapped = [sys.executable, "-c", MAXRSS_WRAPPER] + argv
    started = time.monotonic()
    proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            done.wait(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    maxrss = 0
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("MAXRSS_KIB="):
            maxrss = int(line.split("=", 1)[1])
    return seconds, peak[0] / 1024.0, maxrss / 1024.0, proc.returncode, (out + err).decode(errors="replace")


def _free(address, port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd does: TIME_WAIT is fine
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def write_random(path, size):
    chunk = 8 * MIB
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, chunk)
            handle.write(os.urandom(n))
            left -= n


class Bench(object):
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="fate-transfer-bench-"))
        os.makedirs(self.work, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=SANDBOX)
        self.ssh = None

    # -------------------------------------------------------------- setup
    def start_hosts(self):
        hosts = ["%s.1" % self.args.net, "%s.2" % self.args.net]
        if not all(_free(h, self.args.port) for h in hosts):
            sys.exit("port %d is taken on %s; use --port/--net" % (self.args.port, ", ".join(hosts)))
        root = os.path.join(self.work, "hosts")
        subprocess.run([sys.executable, "-m", "fate_sandbox.ssh", "start", "--root", root, "--hosts",
                        ",".join(hosts), "--port", str(self.args.port)], env=self.env, check=True)
        with open(os.path.join(root, "ssh", "ssh.json"), encoding="utf-8") as handle:
            self.ssh = json.load(handle)
        self.src, self.dst = (self.ssh["hosts"][h] for h in hosts)

    def stop_hosts(self):
        subprocess.run([sys.executable, "-m", "fate_sandbox.ssh", "stop", "--root",
                        os.path.join(self.work, "hosts")], env=self.env, check=False)

    def stage(self):
        self.collections = os.path.join(self.work, "collections")
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "lib", "stage_collection.py"), "--source",
                        REPO, "--dest", os.path.join(self.collections, "ansible_collections", "fate", "flow")],
                       check=True, stdout=subprocess.DEVNULL)
        hostvars = {}
        for name, h in (("src", self.src), ("dst", self.dst)):
            hostvars[name] = {"ansible_host": h["host"], "ansible_port": h["port"], "ansible_user": h["user"],
                              "ansible_ssh_private_key_file": h["private_key"],
                              "ansible_ssh_common_args": self.ssh["ssh_common_args"],
                              "ansible_python_interpreter": "/usr/bin/python3"}
        hostvars["localhost"] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        self.inventory = os.path.join(self.work, "inventory.json")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump({"all": {"hosts": hostvars}}, handle)

    # the project's settings (ansible.cfg of the repository: no -C) for the plugin, Ansible's stock
    # settings (ssh_args default, which includes -C) for fetch + copy
    CONFIGS = {
        "project": "[defaults]\ngathering = explicit\nretry_files_enabled = False\n[connection]\n"
                   "pipelining = True\n[ssh_connection]\n"
                   "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\ncontrol_path_dir = %s\n",
        "stock": "[defaults]\ngathering = explicit\nretry_files_enabled = False\n[ssh_connection]\n"
                 "control_path_dir = %s\n",
    }

    def ansible_run(self, kind, argv):
        """measure() an Ansible command with a config of `kind` and a ControlPersist directory of its own,
        whose masters are closed afterwards (so no method ever reuses another one's connection).

        Returns (measured, tasks): tasks are fate_results' records, whose "seconds" run from the task's
        start to its result, as a task of a longer playbook (the pipeline) costs."""
        cpdir = tempfile.mkdtemp(prefix="fbcp")  # short: the socket path must fit in 107 bytes
        cfg = os.path.join(self.work, "%s.cfg" % kind)
        with open(cfg, "w", encoding="utf-8") as handle:
            handle.write(self.CONFIGS[kind] % cpdir)
        results = os.path.join(self.work, "results-%s.json" % kind)
        if os.path.exists(results):
            os.unlink(results)
        env = dict(os.environ, ANSIBLE_CONFIG=cfg, ANSIBLE_COLLECTIONS_PATH=self.collections,
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=os.path.join(self.work, "ansible-tmp"),
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="fate_results",
                   FATE_RESULTS_FILE=results)
        try:
            measured = measure(argv, env=env)
            tasks = []
            if os.path.exists(results):
                with open(results, encoding="utf-8") as handle:
                    tasks = json.load(handle)["tasks"]
            return measured, tasks
        finally:
            for name in os.listdir(cpdir):
                subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(cpdir, name), "-O", "exit", "bench"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            shutil.rmtree(cpdir, ignore_errors=True)

    def ssh_argv(self, host, ciphers=None):
        return ["ssh", "-i", host["private_key"], "-p", str(host["port"]), "-o", "Compression=no",
                "-o", "ControlMaster=no", "-o", "ControlPath=none"] + \
               (["-o", "Ciphers=%s" % ciphers] if ciphers else []) + shlex.split(self.ssh["ssh_common_args"]) + \
               ["%s@%s" % (host["user"], host["host"])]

    # -------------------------------------------------------------- methods
    def playbook(self, name, tasks, hosts="dst"):
        path = os.path.join(self.work, name + ".yml")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump([{"hosts": hosts, "gather_facts": False, "tasks": tasks}], handle)
        return path

    def run_plugin(self, src, out):
        book = self.playbook("plugin", [
            {"name": "transfer", "fate.flow.model_transfer": {"src_host": "src", "src": src, "dest": out,
                                                              "progress_interval": 0}}])
        measured, tasks = self.ansible_run("project", [os.path.join(VENV_BIN, "ansible-playbook"), "-i",
                                                       self.inventory, book])
        extra = {"task_seconds": sum(t["seconds"] for t in tasks) if tasks else None}
        if tasks:
            extra.update(plugin_seconds=tasks[0]["result"].get("seconds"),
                         stream_mib_s=tasks[0]["result"].get("throughput"))
        return measured, extra

    def run_ssh_pipe(self, src, out, ciphers=None):
        command = "%s %s | %s %s" % (
            " ".join(shlex.quote(a) for a in self.ssh_argv(self.src, ciphers)),
            shlex.quote("cat -- %s" % shlex.quote(src)),
            " ".join(shlex.quote(a) for a in self.ssh_argv(self.dst, ciphers)),
            shlex.quote("cat > %s" % shlex.quote(out)))
        return measure(["/bin/bash", "-o", "pipefail", "-c", command]), {}

    def run_ssh_pipe_aes(self, src, out):
        return self.run_ssh_pipe(src, out, STREAM_CIPHERS)

    def run_scp3(self, src, out):
        argv = ["scp", "-3", "-q", "-i", self.src["private_key"], "-P", str(self.src["port"])] + \
            shlex.split(self.ssh["ssh_common_args"]) + \
            ["%s@%s:%s" % (self.src["user"], self.src["host"], src),
             "%s@%s:%s" % (self.dst["user"], self.dst["host"], out)]
        return measure(argv), {}

    def run_fetch_copy(self, src, out):
        stage = os.path.join(self.work, "fetched")
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        local = os.path.join(stage, os.path.basename(src))
        book = self.playbook("fetch_copy", [
            {"name": "fetch", "ansible.builtin.fetch": {"src": src, "dest": local, "flat": True},
             "delegate_to": "src"},
            {"name": "copy", "ansible.builtin.copy": {"src": local, "dest": out, "mode": "0600"}}])
        try:
            measured, tasks = self.ansible_run("stock", [os.path.join(VENV_BIN, "ansible-playbook"), "-vvv", "-i",
                                                         self.inventory, book])
            # every ssh Ansible ran must have had the stock -C (no master without it to reuse)
            execs = [line for line in measured[4].splitlines() if "SSH: EXEC " in line]
            compressed = sum(1 for line in execs if " -C " in line)
            return measured, {"ssh_execs": len(execs), "ssh_execs_with_C": compressed,
                              "task_seconds": sum(t["seconds"] for t in tasks) if len(tasks) == 2 else None}
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    # -------------------------------------------------------------- main
    def run(self):
        sizes = [parse_size(s) for s in self.args.sizes.split(",") if s.strip()]
        methods = [m for m in METHODS if m not in self.args.skip]
        print("bench: work dir %s, sizes %s, methods %s, repeat %d" % (
            self.work, ", ".join(human(s) for s in sizes), ", ".join(methods), self.args.repeat))
        print("machine: %d cores, load average %s, %s" % (os.cpu_count(), " ".join("%.2f" % v for v in os.getloadavg()),
                                                 subprocess.run(["ssh", "-V"], capture_output=True,
                                                                text=True).stderr.strip()))
        self.start_hosts()
        results = {}
        try:
            self.stage()
            src_dir = os.path.join(self.work, "src #dir")
            dst_dir = os.path.join(self.work, "dst #dir")
            os.makedirs(src_dir, exist_ok=True)
            os.makedirs(dst_dir, exist_ok=True)
            for size in sizes:
                src = os.path.join(src_dir, "guest#99#arbiter-100#guest-99#host-100#model_%s.zip"
                                   % human(size).replace(" ", ""))
                if not os.path.exists(src) or os.path.getsize(src) != size:
                    print("writing %s of random data to %s ..." % (human(size), src), flush=True)
                    write_random(src, size)
                for repeat in range(self.args.repeat):
                    order = list(methods)
                    random.shuffle(order) if self.args.shuffle else None
                    for method in order:
                        out = os.path.join(dst_dir, "out.zip")
                        for leftover in os.listdir(dst_dir):
                            os.unlink(os.path.join(dst_dir, leftover))
                        subprocess.run(["sync"], check=False)
                        load = os.getloadavg()[0]
                        (seconds, tree, single, rc, output), extra = getattr(self, "run_" + method)(src, out)
                        ok = rc == 0 and os.path.exists(out) and os.path.getsize(out) == size
                        if method == "fetch_copy" and ok and extra["ssh_execs_with_C"] != extra["ssh_execs"]:
                            ok = False
                            output += "\nnot every ssh had -C: %(ssh_execs_with_C)d of %(ssh_execs)d" % extra
                        row = {"seconds": seconds, "mib_s": size / MIB / seconds, "tree_mib": tree,
                               "single_mib": single, "ok": ok, "load": load}
                        row.update(extra)
                        results.setdefault(size, {}).setdefault(method, []).append(row)
                        note = ""
                        if method == "fetch_copy":
                            note = "  tasks %s s, ssh with -C: %d of %d" % (
                                extra.get("task_seconds"), extra["ssh_execs_with_C"], extra["ssh_execs"])
                        if method == "plugin":
                            note = "  task %s s (plugin %s s), stream %s MiB/s" % (
                                extra.get("task_seconds"), extra.get("plugin_seconds"), extra.get("stream_mib_s"))
                        print("  %-8s %-12s run %d: %7.2f s %7.1f MiB/s  tree peak %6.1f MiB  largest process "
                              "%6.1f MiB  load %.2f%s%s"
                              % (human(size), method, repeat + 1, seconds, row["mib_s"], tree, single, load, note,
                                 "" if ok else "  FAILED: " + output[-4000:].replace("\n", " | ")[-600:]),
                              flush=True)
                        for leftover in os.listdir(dst_dir):
                            os.unlink(os.path.join(dst_dir, leftover))
                if not self.args.keep_files:
                    os.unlink(src)
        finally:
            self.stop_hosts()
        print("load average at the end: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
        self.report(results, sizes, methods)
        if not self.args.workdir:
            shutil.rmtree(self.work, ignore_errors=True)

    def report(self, results, sizes, methods):
        def median(size, method, key="seconds"):
            rows = [r for r in results.get(size, {}).get(method, []) if r["ok"] and r.get(key)]
            if not rows:
                return None
            rows.sort(key=lambda r: r[key])
            return rows[len(rows) // 2]

        def cost(size, method, key):
            """Seconds by `key`: "task" is the Ansible methods' task time (start-up left out), the
            command's wall time for the others (they have no start-up to leave out)."""
            if key == "task" and method in ("plugin", "fetch_copy"):
                row = median(size, method, "task_seconds")
                return row and row["task_seconds"]
            row = median(size, method)
            return row and row["seconds"]

        print()
        print("| size | method | seconds | MiB/s | Ansible task(s) | peak RSS, process tree (MiB) "
              "| largest process (MiB) | load |")
        print("|---|---|---|---|---|---|---|---|")
        for size in sizes:
            for method in methods:
                r = median(size, method)
                if r is None:
                    print("| %s | %s | failed | | | | | |" % (human(size), method))
                    continue
                task = "%.2f s" % r["task_seconds"] if r.get("task_seconds") else ""
                if method == "plugin" and r.get("stream_mib_s"):
                    task += " (stream %.1f MiB/s)" % r["stream_mib_s"]
                print("| %s | %s | %.2f | %.1f | %s | %.1f | %.1f | %.2f |" % (
                    human(size), method, r["seconds"], r["mib_s"], task, r["tree_mib"], r["single_mib"], r["load"]))
        for key, title in (("wall", "whole commands (ansible-playbook's start-up included)"),
                           ("task", "the Ansible methods' tasks (start-up left out, as in a pipeline run)")):
            print()
            print("ratios of the plugin, %s:" % title)
            print("| size | / ssh_pipe (target >= 0.9) | / ssh_pipe_aes | / scp3 | / fetch_copy (target >= 8) |")
            print("|---|---|---|---|---|")
            for size in sizes:
                mine = cost(size, "plugin", key)

                def ratio(other):
                    theirs = cost(size, other, key)
                    return "%.2f" % (theirs / mine) if mine and theirs else "n/a"
                print("| %s | %s | %s | %s | %s |" % (human(size), ratio("ssh_pipe"), ratio("ssh_pipe_aes"),
                                                    ratio("scp3"), ratio("fetch_copy")))
        plugin_peaks = [(s, median(s, "plugin")) for s in sizes]
        plugin_peaks = [(s, r) for s, r in plugin_peaks if r]
        if len(plugin_peaks) >= 2:
            (s0, r0), (s1, r1) = plugin_peaks[0], plugin_peaks[-1]
            print()
            print("plugin peak memory (process tree): %.1f MiB at %s, %.1f MiB at %s: ratio %.2f (target <= 1.1)"
                  % (r0["tree_mib"], human(s0), r1["tree_mib"], human(s1), r1["tree_mib"] / r0["tree_mib"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100M,1G,4G", help="comma-separated sizes (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and size; the median is reported")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the method order of each repeat")
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out (%s)" % ", ".join(METHODS))
    parser.add_argument("--workdir", help="keep files here (default: a temporary directory, removed at the end)")
    parser.add_argument("--keep-files", action="store_true", help="keep the random source files")
    parser.add_argument("--port", type=int, default=2299, help="sshd port (default: %(default)s)")
    parser.add_argument("--net", default="127.0.88", help="sshd addresses NET.1 and NET.2 (default: %(default)s)")
    args = parser.parse_args()
    args.skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    Bench(args).run()


if __name__ == "__main__":
    main()
