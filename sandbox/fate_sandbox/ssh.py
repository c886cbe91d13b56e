"""SSH test hosts: one sshd per loopback address, for tests and benchmarks of fate.flow.model_transfer.

    python -m fate_sandbox.ssh start --root DIR [--hosts 127.0.10.1,127.0.10.2] [--port 2222]
    python -m fate_sandbox.ssh stop  --root DIR
    python -m fate_sandbox.ssh status --root DIR

Every address of 127.0.0.0/8 is a loopback address, so each sshd listening on its own address is a
separate "host" for Ansible (separate inventory host, separate ControlPersist socket).

Layout under ``<root>/ssh/``::

    client_key, client_key.pub   the key every host accepts (ed25519, no passphrase)
    authorized_keys              AuthorizedKeysFile of every sshd (absolute path)
    known_hosts                  "[address]:port" entries for every host key
    ssh.json                     written last, once every sshd answers (see below)
    hosts/<address>/             sshd_config, ssh_host_ed25519_key(.pub), sshd.pid, sshd.log

``ssh.json``::

    {"root": ..., "port": 2222, "user": "root", "private_key": ".../client_key",
     "known_hosts": ".../known_hosts", "ssh_common_args": "-o UserKnownHostsFile=... -o ...",
     "hosts": {"127.0.10.1": {"host": "127.0.10.1", "port": 2222, "user": "root",
                              "private_key": ..., "known_hosts": ..., "pid": 1234,
                              "pid_file": ..., "config": ..., "log": ...}}}

sshd settings: PermitRootLogin prohibit-password (CI runs as root), UsePAM no, StrictModes no,
public-key authentication only, ``Subsystem sftp internal-sftp`` (scp of OpenSSH 9 uses SFTP). As
root, the privilege separation directory /run/sshd is created when missing. As another user, sshd
runs unprivileged and only that user can log in. ``stop`` signals exactly the recorded pids (after
checking /proc/<pid>/cmdline is that sshd with that config) and never kills by name.
"""
import argparse
import getpass
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

SSHD = os.environ.get("FATE_SANDBOX_SSHD", "/usr/sbin/sshd")
SSH_KEYGEN = os.environ.get("FATE_SANDBOX_SSH_KEYGEN", "ssh-keygen")
DEFAULT_HOSTS = "127.0.10.1,127.0.10.2,127.0.10.3,127.0.10.4"
DEFAULT_PORT = 2222


class SshSandboxError(Exception):
    pass


def _config_value(path):
    """A path as an sshd_config argument (double-quoted; sshd accepts spaces and '#' inside quotes)."""
    if '"' in path or "\n" in path or "\r" in path:
        raise SshSandboxError("ssh configuration cannot hold a path with a double quote or a newline: %r" % path)
    return '"%s"' % path


def common_args(known_hosts):
    """ssh options every client of these hosts needs (Ansible's ansible_ssh_common_args): their known_hosts
    file, strict host key checking, only the given key."""
    return " ".join(shlex.quote(a) for a in (
        "-o", 'UserKnownHostsFile="%s"' % known_hosts, "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes"))


def _port_open(address, port, timeout=0.3):
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _keygen(path, comment):
    if os.path.exists(path):
        return
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, stdin=subprocess.DEVNULL)


def _pid_is_our_sshd(pid, config):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
        with open("/proc/%d/stat" % pid, "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == b"Z":
        return False
    # sshd rewrites its title: "sshd: /usr/sbin/sshd -f <config> -E <log> [listener] ..."
    line = b" ".join(argv)
    return b"sshd" in argv[0].split(b" ")[0] and os.fsencode(config) in line


def _read_pid(pid_file):
    try:
        with open(pid_file, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def paths(root):
    base = os.path.join(os.path.abspath(root), "ssh")
    return {
        "base": base,
        "client_key": os.path.join(base, "client_key"),
        "authorized_keys": os.path.join(base, "authorized_keys"),
        "known_hosts": os.path.join(base, "known_hosts"),
        "json": os.path.join(base, "ssh.json"),
    }


def host_paths(root, address):
    hdir = os.path.join(paths(root)["base"], "hosts", address)
    return {
        "dir": hdir,
        "config": os.path.join(hdir, "sshd_config"),
        "host_key": os.path.join(hdir, "ssh_host_ed25519_key"),
        "pid_file": os.path.join(hdir, "sshd.pid"),
        "log": os.path.join(hdir, "sshd.log"),
    }


def _write_config(hp, address, port, authorized_keys, user):
    lines = [
        "# written by fate_sandbox.ssh",
        "ListenAddress %s" % address,
        "Port %d" % port,
        "HostKey %s" % _config_value(hp["host_key"]),
        "PidFile %s" % _config_value(hp["pid_file"]),
        "AuthorizedKeysFile %s" % _config_value(authorized_keys),
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "AllowUsers %s" % user,
        "X11Forwarding no",
        "PrintMotd no",
        "UseDNS no",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "AcceptEnv LANG LC_*",
        # Commands run by sshd go through the user's login shell; Debian's bash then sources ~/.bashrc unless
        # SHLVL is already set. A stock Debian .bashrc returns at once for non-interactive shells, a developer's
        # (pyenv/conda init) can cost 0.2 s per command. Party hosts behave like a stock host either way.
        "SetEnv SHLVL=1",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    with open(hp["config"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def status(root):
    try:
        with open(paths(root)["json"], encoding="utf-8") as handle:
            info = json.load(handle)
    except OSError:
        return None
    alive = {}
    for address, host in info["hosts"].items():
        pid = _read_pid(host["pid_file"])
        alive[address] = bool(pid and _pid_is_our_sshd(pid, host["config"]) and _port_open(address, host["port"]))
    info["alive"] = alive
    return info


def start(root, hosts, port, timeout=15.0):
    """Start one sshd per address (idempotent: running ones are kept). Returns the ssh.json data."""
    root = os.path.abspath(root)
    p = paths(root)
    os.makedirs(p["base"], mode=0o700, exist_ok=True)
    os.chmod(p["base"], 0o700)
    user = getpass.getuser()
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    _keygen(p["client_key"], "fate-sandbox-client")
    with open(p["client_key"] + ".pub", encoding="ascii") as handle:
        client_pub = handle.read().strip()
    with open(p["authorized_keys"], "w", encoding="ascii") as handle:
        handle.write(client_pub + "\n")
    os.chmod(p["authorized_keys"], 0o600)

    known = []
    hosts_info = {}
    started = []
    try:
        for address in hosts:
            hp = host_paths(root, address)
            os.makedirs(hp["dir"], mode=0o700, exist_ok=True)
            _keygen(hp["host_key"], "fate-sandbox-host-%s" % address)
            with open(hp["host_key"] + ".pub", encoding="ascii") as handle:
                key_type, key_data = handle.read().split()[:2]
            known.append("[%s]:%d %s %s" % (address, port, key_type, key_data))
            pid = _read_pid(hp["pid_file"])
            if pid and _pid_is_our_sshd(pid, hp["config"]) and _port_open(address, port):
                pass  # already running with this config
            else:
                if _port_open(address, port):
                    raise SshSandboxError("%s:%d is already in use by another process" % (address, port))
                _write_config(hp, address, port, p["authorized_keys"], user)
                try:
                    os.unlink(hp["pid_file"])
                except FileNotFoundError:
                    pass
                proc = subprocess.run([SSHD, "-f", hp["config"], "-E", hp["log"]], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
                if proc.returncode != 0:
                    raise SshSandboxError("sshd for %s:%d did not start (exit %d): %s %s" % (
                        address, port, proc.returncode, proc.stdout.decode(errors="replace").strip(),
                        _tail(hp["log"])))
                started.append(address)
            hosts_info[address] = {"host": address, "port": port, "user": user,
                                   "private_key": p["client_key"], "known_hosts": p["known_hosts"],
                                   "pid_file": hp["pid_file"], "config": hp["config"], "log": hp["log"]}
        with open(p["known_hosts"], "w", encoding="ascii") as handle:
            handle.write("\n".join(known) + "\n")

        deadline = time.monotonic() + timeout
        for address, info in hosts_info.items():
            while True:
                pid = _read_pid(info["pid_file"])
                if pid and _port_open(address, port):
                    info["pid"] = pid
                    break
                if time.monotonic() > deadline:
                    raise SshSandboxError("sshd on %s:%d does not answer after %.0f s: %s" % (
                        address, port, timeout, _tail(info["log"])))
                time.sleep(0.05)
    except BaseException:
        for address in started:
            _stop_one(host_paths(root, address))
        raise

    data = {
        "root": root,
        "port": port,
        "user": user,
        "private_key": p["client_key"],
        "known_hosts": p["known_hosts"],
        "ssh_common_args": common_args(p["known_hosts"]),
        "hosts": hosts_info,
    }
    tmp = p["json"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, p["json"])
    return data


def _tail(path, lines=5):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return " | ".join(handle.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def _stop_one(hp, timeout=10.0):
    pid = _read_pid(hp["pid_file"])
    if not pid or not _pid_is_our_sshd(pid, hp["config"]):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_is_our_sshd(pid, hp["config"]):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return not _pid_is_our_sshd(pid, hp["config"])


def stop(root):
    """Stop the sshds recorded under root (by pid). Returns True when all are gone."""
    root = os.path.abspath(root)
    hosts_dir = os.path.join(paths(root)["base"], "hosts")
    ok = True
    if os.path.isdir(hosts_dir):
        for address in sorted(os.listdir(hosts_dir)):
            ok = _stop_one(host_paths(root, address)) and ok
    try:
        os.unlink(paths(root)["json"])
    except FileNotFoundError:
        pass
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fate_sandbox.ssh",
                                     description="One sshd per loopback address, for transfer tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        s = sub.add_parser(name)
        s.add_argument("--root", required=True, help="directory; files go to ROOT/ssh/")
        if name == "start":
            s.add_argument("--hosts", default=DEFAULT_HOSTS, help="comma-separated loopback addresses")
            s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of every sshd")
            s.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
            data = start(args.root, hosts, args.port, args.timeout)
            print("sshd running on %s (port %d); %s" % (", ".join(hosts), args.port, paths(args.root)["json"]))
            return 0 if data else 1
        if args.command == "stop":
            ok = stop(args.root)
            print("sshd stopped" if ok else "some sshd did not stop")
            return 0 if ok else 1
        info = status(args.root)
        if info is None:
            print("no ssh hosts recorded under %s" % args.root)
            return 3
        for address, up in info["alive"].items():
            print("%s:%d %s" % (address, info["port"], "up" if up else "DOWN"))
        return 0 if all(info["alive"].values()) else 1
    except (SshSandboxError, subprocess.CalledProcessError, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
