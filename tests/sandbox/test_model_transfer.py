"""fate.flow.model_transfer against real sshd hosts on loopback addresses (fate_sandbox.ssh).

Each test runs ansible-playbook in a subprocess with an inventory of its own: hosts `src` and `dst`
are two sshd on different 127.x.y.z addresses (so Ansible treats them as different machines),
`src_down` (src's address with a closed port) and `localhost` (local connection). The collection is
staged from this checkout into a temporary ansible_collections tree first
(scripts/lib/stage_collection.py), so the tests see the working copy.
"""
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX = os.path.join(REPO, "sandbox")
VENV_BIN = os.path.dirname(sys.executable)
ANSIBLE_PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
ARCHIVE = "guest#99#arbiter-100#guest-99#host-100#model_2024 06 01#1.zip"
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"),
                                reason="openssh-server is not installed (scripts/bootstrap.sh installs it)")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def random_file(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, 4 * MIB)
            handle.write(os.urandom(n))
            left -= n
    return path


def _free(address, port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd does: TIME_WAIT is fine
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    """Two sshd on random 127.77.x.{1,2} addresses and a free port; stopped at the end."""
    root = str(tmp_path_factory.mktemp("ssh"))
    env = dict(os.environ, PYTHONPATH=SANDBOX)
    last = None
    hosts = []
    for _attempt in range(8):
        net = "127.77.%d" % random.randint(1, 250)
        hosts = ["%s.1" % net, "%s.2" % net]
        port = random.randint(23000, 23999)
        if not all(_free(h, port) for h in hosts):
            continue
        proc = subprocess.run([sys.executable, "-m", "fate_sandbox.ssh", "start", "--root", root,
                               "--hosts", ",".join(hosts), "--port", str(port)],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            break
        last = proc.stdout + proc.stderr
        subprocess.run([sys.executable, "-m", "fate_sandbox.ssh", "stop", "--root", root], env=env, check=False)
    else:
        pytest.fail("could not start the sshd test hosts: %s" % last)
    with open(os.path.join(root, "ssh", "ssh.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    info["src"], info["dst"] = info["hosts"][hosts[0]], info["hosts"][hosts[1]]
    yield info
    subprocess.run([sys.executable, "-m", "fate_sandbox.ssh", "stop", "--root", root], env=env, check=False)


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """This checkout, staged as it ships, in a directory of its own."""
    base = tmp_path_factory.mktemp("collections")
    dest = base / "ansible_collections" / "fate" / "flow"
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "lib", "stage_collection.py"),
                    "--source", REPO, "--dest", str(dest)], check=True, capture_output=True)
    return str(base)


class Runner(object):
    """Writes inventory, ansible.cfg and playbooks; runs ansible-playbook; returns the task result."""

    def __init__(self, workdir, ssh, collections):
        self.workdir = workdir
        self.ssh = ssh
        self.collections = collections
        self.count = 0
        # short: the ControlPersist socket path must fit in 107 bytes
        self.cpdir = tempfile.mkdtemp(prefix="mtcp")
        hostvars = {}
        for name in ("src", "dst"):
            h = ssh[name]
            hostvars[name] = {"ansible_host": h["host"], "ansible_port": h["port"], "ansible_user": h["user"],
                              "ansible_ssh_private_key_file": h["private_key"],
                              "ansible_ssh_common_args": ssh["ssh_common_args"],
                              "ansible_python_interpreter": "/usr/bin/python3"}
        hostvars["src_down"] = dict(hostvars["src"], ansible_port=1)
        # the same two hosts under other names, with ciphers of their own (in the ssh arguments, and in
        # an ssh configuration file), or with no other difference
        self.ssh_config = os.path.join(workdir, "ssh config #1")
        with open(self.ssh_config, "w", encoding="utf-8") as handle:
            handle.write("Ciphers aes256-ctr\n")
        hostvars["dst_own_ciphers"] = dict(hostvars["dst"], ansible_ssh_extra_args="-o Ciphers=aes256-ctr")
        hostvars["dst_config_ciphers"] = dict(hostvars["dst"],
                                              ansible_ssh_extra_args="-F %s" % shlex.quote(self.ssh_config))
        hostvars["src_plain"] = dict(hostvars["src"])
        hostvars["dst_plain"] = dict(hostvars["dst"])
        hostvars["localhost"] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        self.inventory = os.path.join(workdir, "inventory.json")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump({"all": {"hosts": hostvars}}, handle)
        self.config = os.path.join(workdir, "ansible.cfg")
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write("[defaults]\ngathering = explicit\nretry_files_enabled = False\n"
                         "host_key_checking = True\n"
                         "[ssh_connection]\nssh_args = -o ControlMaster=auto -o ControlPersist=30s\n"
                         "control_path_dir = %s\n" % self.cpdir)

    def env(self):
        return dict(os.environ, ANSIBLE_CONFIG=self.config, ANSIBLE_COLLECTIONS_PATH=self.collections,
                    ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1",
                    ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, "tmp"))

    def playbook(self, tasks, target="dst"):
        """tasks: [(module args, extra task keywords)]; every result is saved, in order, to one file."""
        self.count += 1
        result_file = os.path.join(self.workdir, "result-%d.json" % self.count)
        play_tasks = []
        for index, (args, extra) in enumerate(tasks):
            task = {"name": "transfer %d" % index, "fate.flow.model_transfer": args, "register": "r%d" % index,
                    "ignore_errors": True}
            task.update(extra or {})
            play_tasks.append(task)
        everything = "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(tasks)))
        play_tasks.append({"name": "save the results",
                           "ansible.builtin.copy": {"content": everything, "dest": result_file, "mode": "0600"},
                           "delegate_to": "localhost", "check_mode": False, "become": False})
        play = [{"hosts": target, "gather_facts": False, "tasks": play_tasks}]
        path = os.path.join(self.workdir, "play-%d.yml" % self.count)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(play, handle)
        return path, result_file

    def run_many(self, tasks, target="dst", timeout=180, verbose=False):
        path, result_file = self.playbook(tasks, target)
        proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", self.inventory, path] + (["-vvv"] if verbose else []),
                              env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)
        if not os.path.exists(result_file):
            pytest.fail("ansible-playbook did not get to save the results (exit %d):\n%s\n%s"
                        % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
        with open(result_file, encoding="utf-8") as handle:
            results = json.load(handle)
        for result in results:
            result["_stdout"] = proc.stdout
        return results

    def run(self, args, target="dst", task_extra=None, timeout=180):
        return self.run_many([(args, task_extra)], target, timeout)[0]

    def start(self, args, target="dst"):
        path, result_file = self.playbook([(args, None)], target)
        proc = subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", self.inventory, path], env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        return proc, result_file


@pytest.fixture(scope="module")
def runner(ssh_hosts, collections, tmp_path_factory):
    r = Runner(str(tmp_path_factory.mktemp("play")), ssh_hosts, collections)
    yield r
    shutil.rmtree(r.cpdir, ignore_errors=True)


@pytest.fixture
def area(tmp_path):
    """A directory with a space and a '#' in its name, for source and destination files."""
    path = tmp_path / "model area #1"
    path.mkdir()
    return path


def part_of(path):
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".part")


def assert_ok(result, changed=True):
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is changed, result


def test_names_with_hash_and_spaces_then_unchanged_and_check_mode(runner, area):
    src = random_file(str(area / "src dir #1" / ARCHIVE), 3 * MIB + 17)
    with open(src + ".sha1", "w", encoding="ascii") as handle:
        handle.write(sha1(src))
    dest_dir = str(area / "dest dir #2") + "/"
    os.makedirs(dest_dir)
    other = str(area / "check only") + "/"
    os.makedirs(other)
    args = {"src_host": "src", "src": src, "dest": dest_dir}

    first, second, checked, checked_same = runner.run_many([
        (args, None),
        (args, None),                                   # unchanged: nothing moves
        (dict(args, dest=other), {"check_mode": True}),  # would move, writes nothing
        (args, {"check_mode": True}),                    # up to date: nothing would move
    ])
    assert_ok(first)
    final = os.path.join(dest_dir, ARCHIVE)
    assert first["dest"] == final
    assert sha256(final) == sha256(src) == first["sha256"]
    assert first["sha1"] == sha1(src)
    assert first["bytes_transferred"] == os.path.getsize(src)
    assert first["resumed"] is False and first["verified"] is True
    assert oct(os.stat(final).st_mode & 0o7777) == "0o600" and first["mode"] == "0600"
    assert first["throughput"] > 0 and first["seconds"] > 0
    assert not os.path.exists(part_of(final))

    assert_ok(second, changed=False)
    assert second["bytes_transferred"] == 0 and second["sha256"] == first["sha256"]

    assert_ok(checked)
    assert checked["bytes_transferred"] == os.path.getsize(src)
    assert os.listdir(other) == []
    assert_ok(checked_same, changed=False)
    assert checked_same["bytes_transferred"] == 0


def _logins(host):
    with open(host["log"], encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if "Accepted publickey" in line)


def test_one_connection_per_host_inspects_and_carries_the_data(runner, ssh_hosts, area):
    # each host costs one ssh handshake per task: the helper that inspects it also carries the data
    src = random_file(str(area / ARCHIVE), 5 * MIB + 3)
    dest = str(area / "one connection.zip")
    before = {name: _logins(ssh_hosts[name]) for name in ("src", "dst")}
    result = runner.run({"src_host": "src", "src": src, "dest": dest})
    assert_ok(result)
    assert sha256(dest) == sha256(src) == result["sha256"]
    after = {name: _logins(ssh_hosts[name]) for name in ("src", "dst")}
    assert after == {"src": before["src"] + 1, "dst": before["dst"] + 1}, (before, after)


def _descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_killed_half_way_then_rerun_resumes_with_progress(runner, area):
    src = random_file(str(area / ARCHIVE), 200 * MIB)
    dest = str(area / "out" / "model.zip")
    os.makedirs(os.path.dirname(dest))
    part = part_of(dest)
    args = {"src_host": "src", "src": src, "dest": dest, "progress_interval": 0.5, "buffer_size": 256 * 1024}
    proc, _result = runner.start(args)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if os.path.exists(part) and os.path.getsize(part) >= 40 * MIB:
                break
            if proc.poll() is not None:
                pytest.fail("the transfer ended before it could be interrupted: %s"
                            % proc.stdout.read().decode(errors="replace")[-3000:])
            time.sleep(0.02)
        else:
            pytest.fail("the .part file never reached 40 MiB")
    finally:
        # ansible-playbook, its worker (a session of its own) and the ssh clients: all at once
        for pid in [proc.pid] + _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        proc.stdout.close()
    # the writer on dst notices the end of its stream and stops; wait until the .part stops growing
    size, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        now = os.path.getsize(part) if os.path.exists(part) else -2
        if now != size:
            size, stable_since = now, time.monotonic()
        time.sleep(0.05)
    assert not os.path.exists(dest), "a partial file sits at the final path"
    assert 0 < size < 200 * MIB

    rerun = runner.run(args)
    assert_ok(rerun)
    assert sha256(dest) == sha256(src) == rerun["sha256"]
    assert not os.path.exists(part)
    assert rerun["resumed"], "the rerun restarted instead of resuming from %d bytes: %s" % (size, rerun["msg"])
    assert rerun["resumed_from"] == size and rerun["bytes_transferred"] == 200 * MIB - size
    progress = [line for line in rerun["_stdout"].splitlines() if line.startswith("model_transfer ")]
    assert progress and "MiB/s" in progress[-1], rerun["_stdout"][-2000:]


def test_corrupted_destination_and_stale_part(runner, area):
    src = random_file(str(area / ARCHIVE), 2 * MIB)
    corrupted = str(area / "copy.zip")
    with open(src, "rb") as handle:
        data = bytearray(handle.read())
    data[MIB] ^= 0xFF  # same size, one byte flipped
    with open(corrupted, "wb") as handle:
        handle.write(data)
    fresh = str(area / "fresh.zip")
    with open(part_of(fresh), "wb") as handle:  # a stale .part that is not a prefix of the source
        handle.write(b"garbage" * 1000)
    replaced, restarted = runner.run_many([
        ({"src_host": "src", "src": src, "dest": corrupted}, None),
        ({"src_host": "src", "src": src, "dest": fresh}, None),
    ])
    assert_ok(replaced)
    assert replaced["bytes_transferred"] == 2 * MIB and sha256(corrupted) == sha256(src)
    assert_ok(restarted)
    assert restarted["resumed"] is False and sha256(fresh) == sha256(src)
    assert not os.path.exists(part_of(fresh))


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small fs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a 4 MiB tmpfs to fill up (needs root): %s" % proc.stderr.strip())
    yield str(mnt)
    subprocess.run(["umount", str(mnt)], check=False)


def test_not_enough_space(runner, area, small_fs):
    src = random_file(str(area / ARCHIVE), 6 * MIB)
    before = sha256(src)
    dest = os.path.join(small_fs, "model.zip")
    early, late = runner.run_many([
        ({"src_host": "src", "src": src, "dest": dest}, None),
        # without the df check, the writer hits ENOSPC half-way
        ({"src_host": "src", "src": src, "dest": dest, "check_space": False}, None),
    ])
    assert early["failed"] and "not enough space" in early["msg"], early["msg"]
    assert small_fs in early["msg"] and str(6 * MIB) in early["msg"] and "'dst'" in early["msg"]
    assert early["needed_bytes"] == 6 * MIB
    assert late["failed"] and "ran out of space" in late["msg"], late["msg"]
    assert "needed" in late["msg"] and small_fs in late["msg"]
    assert os.listdir(small_fs) == [], "a partial file was left behind"
    assert sha256(src) == before


def test_sha1_sidecar_mismatch(runner, area):
    src = random_file(str(area / ARCHIVE), MIB)
    with open(src + ".sha1", "w", encoding="ascii") as handle:
        handle.write("0" * 40 + "\n")
    dest = str(area / "in") + "/"
    os.makedirs(dest)
    result = runner.run({"src_host": "src", "src": src, "dest": dest})
    assert result["failed"] and ".sha1 sidecar" in result["msg"], result["msg"]
    assert os.listdir(dest) == []


def test_errors_name_the_host_and_the_path(runner, area):
    src = random_file(str(area / ARCHIVE), 4096)
    nodir = str(area / "no such dir" / "x.zip")
    missing, no_dir, created, down = runner.run_many([
        ({"src_host": "src", "src": str(area / "nope #1.zip"), "dest": str(area) + "/"}, None),
        ({"src_host": "src", "src": src, "dest": nodir}, None),
        ({"src_host": "src", "src": src, "dest": nodir, "create_dest_dir": True}, None),
        # a source host whose sshd does not answer
        ({"src_host": "src_down", "src": src, "dest": str(area / "y.zip")}, None),
    ])
    assert missing["failed"] and "does not exist" in missing["msg"] and "'src'" in missing["msg"], missing["msg"]
    assert no_dir["failed"] and "create_dest_dir" in no_dir["msg"] and "'dst'" in no_dir["msg"], no_dir["msg"]
    assert_ok(created)
    assert sha256(nodir) == sha256(src)
    assert down["failed"] and "ssh to host 'src_down'" in down["msg"], down["msg"]
    assert not os.path.exists(str(area / "y.zip"))


def test_local_source_and_dest_host_other_than_the_task_host(runner, area):
    src = random_file(str(area / ARCHIVE), MIB)
    pushed, from_local = runner.run_many([
        ({"src_host": "src", "src": src, "dest": str(area / "pushed.zip"), "dest_host": "dst"}, None),
        ({"src_host": "localhost", "src": src, "dest": str(area / "from local.zip"), "dest_host": "dst"}, None),
    ], target="localhost")
    assert_ok(pushed)
    assert pushed["dest_host"] == "dst" and sha256(str(area / "pushed.zip")) == sha256(src)
    assert_ok(from_local)
    assert sha256(str(area / "from local.zip")) == sha256(src)


def test_owner_group_mode_and_become(runner, area):
    if not shutil.which("su"):
        pytest.skip("su is not installed")
    src = random_file(str(area / ARCHIVE), MIB)
    os.chmod(src, 0o644)
    dest_dir = area / "drop"
    dest_dir.mkdir()
    os.chmod(str(dest_dir), 0o1777)
    parent = str(area)
    while parent != "/":  # nobody must be able to reach the files
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        parent = os.path.dirname(parent)
    same = str(dest_dir / "same.zip")
    shutil.copyfile(src, same)
    os.chmod(same, 0o600)

    as_root, fixed, become = runner.run_many([
        ({"src_host": "src", "src": src, "dest": str(dest_dir / "root.zip"),
          "owner": "nobody", "group": "nogroup", "mode": "0640"}, None),
        # same data, other mode: corrected without moving anything
        ({"src_host": "src", "src": src, "dest": same, "mode": "0644"}, None),
        ({"src_host": "src", "src": src, "dest": str(dest_dir / "nobody.zip")},
         {"become": True, "become_method": "su", "become_user": "nobody"}),
    ])
    assert_ok(as_root)
    st = os.stat(str(dest_dir / "root.zip"))
    assert (st.st_uid, oct(st.st_mode & 0o7777)) == (65534, "0o640")
    assert_ok(fixed)
    assert fixed["bytes_transferred"] == 0 and oct(os.stat(same).st_mode & 0o7777) == "0o644"
    assert_ok(become)
    st = os.stat(str(dest_dir / "nobody.zip"))
    assert st.st_uid == 65534, "the file was not written by the become user"
    assert sha256(str(dest_dir / "nobody.zip")) == sha256(src)


STREAM_CIPHERS = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                  "aes128-ctr,aes192-ctr,aes256-ctr")


def _machine_sets_ciphers():
    """Whether this machine's own ssh configuration (~/.ssh/config, /etc/ssh/ssh_config) chooses ciphers."""
    def ciphers(*args):
        out = subprocess.run(["ssh", "-G"] + list(args) + ["localhost"], capture_output=True, text=True,
                             check=True).stdout
        return [line for line in out.splitlines() if line.startswith("ciphers ")]
    return ciphers() != ciphers("-F", "/dev/null")


def _stream_lines(stdout, host):
    """The -vvv lines naming the ssh command of each data stream to inventory host `host`."""
    return [line for line in stdout.splitlines()
            if line.startswith("model_transfer: data stream to host '%s' " % host)]


def test_stream_ciphers_prefer_aes_gcm_unless_the_host_chooses(runner, area):
    src = random_file(str(area / ARCHIVE), 2 * MIB + 5)
    cases = [
        ({"src_host": "src", "src": src, "dest": str(area / "default.zip")}, None),
        ({"src_host": "src", "src": src, "dest": str(area / "own args.zip"), "dest_host": "dst_own_ciphers"}, None),
        ({"src_host": "src", "src": src, "dest": str(area / "own config.zip"), "dest_host": "dst_config_ciphers"},
         None),
        ({"src_host": "src_plain", "src": src, "dest": str(area / "plain.zip"), "dest_host": "dst_plain",
          "stream_ciphers": ""}, None),
        ({"src_host": "src", "src": src, "dest": str(area / "bad.zip"), "stream_ciphers": "aes128-ctr aes256-ctr"},
         None),
    ]
    default, own_args, own_config, plain, bad = runner.run_many(cases, verbose=True)
    out = default["_stdout"]
    for result, name in ((default, "default.zip"), (own_args, "own args.zip"), (own_config, "own config.zip"),
                         (plain, "plain.zip")):
        assert_ok(result)
        assert sha256(str(area / name)) == sha256(src) == result["sha256"]

    preference = "-o Ciphers=%s " % STREAM_CIPHERS
    lines = _stream_lines(out, "dst")
    assert len(lines) == 1, out[-3000:]
    if _machine_sets_ciphers():  # this machine's ssh configuration wins over the default preference
        assert "Ciphers=" not in lines[0]
    else:
        assert preference in lines[0], lines[0]
    # the host's own ssh arguments choose: only theirs is on the command line
    lines = _stream_lines(out, "dst_own_ciphers")
    assert len(lines) == 1 and "-o Ciphers=aes256-ctr" in lines[0] and "aes128-gcm" not in lines[0], lines
    assert "model_transfer: the ssh arguments of host 'dst_own_ciphers'" in out
    # an ssh configuration file chooses (seen through ssh -G): no Ciphers option at all
    lines = _stream_lines(out, "dst_config_ciphers")
    assert len(lines) == 1 and "Ciphers=" not in lines[0] and "-F " in lines[0], lines
    assert "model_transfer: the ssh configuration of host 'dst_config_ciphers'" in out
    # stream_ciphers: '' leaves ssh's choice alone on both sides
    lines = _stream_lines(out, "dst_plain") + _stream_lines(out, "src_plain")
    assert len(lines) == 2 and not any("Ciphers=" in line for line in lines), lines

    assert bad["failed"] and "stream_ciphers must be a comma-separated list" in bad["msg"], bad["msg"]
    assert not os.path.exists(str(area / "bad.zip"))


def test_direct_mode(runner, area, ssh_hosts):
    src = random_file(str(area / ARCHIVE), 5 * MIB)
    dest = str(area / "direct #2") + "/"
    refused = str(area / "refused") + "/"
    os.makedirs(dest)
    os.makedirs(refused)
    pull_args = "-i %s %s" % (shlex.quote(ssh_hosts["private_key"]), ssh_hosts["ssh_common_args"])
    own = str(area / "direct own ciphers") + "/"
    os.makedirs(own)
    ok, own_ciphers, bad_key = runner.run_many([
        ({"src_host": "src", "src": src, "dest": dest, "transfer_mode": "direct", "direct_ssh_args": pull_args},
         None),
        # the destination's ssh with ciphers of the user's choosing (-c): no preference of the plugin's
        ({"src_host": "src", "src": src, "dest": own, "transfer_mode": "direct",
          "direct_ssh_args": "-c aes256-ctr " + pull_args}, None),
        # the destination cannot log in to the source: a clear error, nothing left behind
        ({"src_host": "src", "src": src, "dest": refused, "transfer_mode": "direct",
          "direct_ssh_args": "-i /nonexistent -o IdentitiesOnly=yes " + ssh_hosts["ssh_common_args"]}, None),
    ], verbose=True)
    assert_ok(ok)
    assert_ok(own_ciphers)
    assert sha256(os.path.join(own, ARCHIVE)) == sha256(src)
    # the preference is offered by the first and the third task; the second one's -c wins
    assert ok["_stdout"].count("model_transfer: direct mode: host 'dst'") == 2, ok["_stdout"][-3000:]
    assert ok["transfer_mode"] == "direct" and sha256(os.path.join(dest, ARCHIVE)) == sha256(src)
    assert ok["bytes_transferred"] == 5 * MIB
    assert bad_key["failed"] and "could not read" in bad_key["msg"] and "'dst'" in bad_key["msg"], bad_key["msg"]
    assert os.listdir(refused) == []
