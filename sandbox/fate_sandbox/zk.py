"""A real ZooKeeper server for the sandbox, and the ACL'd roots FATE uses.

The server is the distribution's own jar (Debian's `zookeeper` package puts it in
/usr/share/java/zookeeper.jar, whose manifest carries the class path), run with a zoo.cfg of the
sandbox's own: `java -cp <jars> org.apache.zookeeper.server.quorum.QuorumPeerMain <zoo.cfg>`.
FATE_SANDBOX_ZK_CLASSPATH overrides the jar discovery (a java class path, ':'-separated).
"""
import glob
import logging
import os
import signal
import socket
import subprocess
import time

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
ROOTS = ("/FATE-SERVICES", "/FATE-COMPONENTS")
USER = "fate"

_JAR_CANDIDATES = (
    "/usr/share/java/zookeeper.jar",            # Debian / Ubuntu package
    "/usr/share/zookeeper/zookeeper.jar",
)
_LIB_GLOBS = (
    "/usr/share/zookeeper/lib/*.jar",           # upstream tarball unpacked there
    "/opt/zookeeper/lib/*.jar",
)
# Debian's jar names slf4j-api but no binding; slf4j-simple sends the log to stderr (our log file).
_LOG_BINDINGS = ("/usr/share/java/slf4j-simple.jar",)


class ZooKeeperError(Exception):
    pass


def classpath():
    override = os.environ.get("FATE_SANDBOX_ZK_CLASSPATH")
    if override:
        return override
    for jar in _JAR_CANDIDATES:
        if os.path.isfile(jar):
            return ":".join([jar] + [b for b in _LOG_BINDINGS if os.path.isfile(b)])
    for pattern in _LIB_GLOBS:
        jars = sorted(glob.glob(pattern))
        if jars:
            return ":".join(jars)
    raise ZooKeeperError("no ZooKeeper jar found (install Debian's zookeeper package, "
                         "or set FATE_SANDBOX_ZK_CLASSPATH)")


def java():
    for candidate in (os.environ.get("JAVA"), "/usr/bin/java"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = subprocess.run(["sh", "-c", "command -v java"], capture_output=True, text=True).stdout.strip()
    if found:
        return found
    raise ZooKeeperError("java not found (ZooKeeper needs a JRE)")


def write_config(zk_dir, port, address="127.0.0.1"):
    """zookeeper/zoo.cfg for a standalone server; returns its path."""
    data_dir = os.path.join(zk_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(os.path.join(zk_dir, "logs"), exist_ok=True)
    path = os.path.join(zk_dir, "zoo.cfg")
    with open(path, "w") as f:
        f.write(
            "# Standalone ZooKeeper of the FATE sandbox federation (written by fate_sandbox).\n"
            "tickTime=2000\n"
            "initLimit=10\n"
            "syncLimit=5\n"
            # java.util.Properties treats a backslash as an escape character.
            "dataDir=%s\n"
            "clientPort=%d\n"
            "clientPortAddress=%s\n"
            "maxClientCnxns=200\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,srvr,stat,mntr\n"
            "autopurge.snapRetainCount=3\n"
            "autopurge.purgeInterval=0\n" % (data_dir.replace("\\", "\\\\"), port, address))
    return path


def start(zk_dir, config_path):
    """Start the server in the background (its own session); returns its pid."""
    log_path = os.path.join(zk_dir, "logs", "zookeeper.out")
    command = [java(), "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Dzookeeper.admin.enableServer=false",
               "-Dzookeeper.log.dir=" + os.path.join(zk_dir, "logs"),
               "-cp", classpath(), MAIN_CLASS, config_path]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                cwd=zk_dir, start_new_session=True, close_fds=True)
    with open(os.path.join(zk_dir, "zookeeper.pid"), "w") as f:
        f.write("%d\n" % proc.pid)
    # The launcher exits without waiting; tell Python not to complain about it.
    proc.returncode = 0
    return proc.pid


def four_letter(host, port, word="ruok", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def wait_ready(host, port, pid, timeout=20.0, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if four_letter(host, port) == "imok":
            return
        if not _alive(pid):
            break
        time.sleep(0.1)
    tail = ""
    if log_path and os.path.exists(log_path):
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
    raise ZooKeeperError("ZooKeeper on %s:%d did not come up (pid %d); log %s:\n%s"
                         % (host, port, pid, log_path, tail))


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def client(hosts, user=None, password=None, timeout=10.0, quiet=True):
    """A started kazoo client; with user/password it authenticates by digest.

    quiet: kazoo's connection chatter (e.g. "Connection dropped" when a session closes) is not
    printed; errors still are."""
    from kazoo.client import KazooClient
    kwargs = {}
    if quiet:
        logger = logging.getLogger("fate_sandbox.zk.kazoo")
        logger.setLevel(logging.ERROR)
        kwargs["logger"] = logger
    if user is not None:
        from kazoo.security import make_digest_acl
        kwargs.update(auth_data=[("digest", "%s:%s" % (user, password))],
                      default_acl=[make_digest_acl(user, password, all=True)])
    zk = KazooClient(hosts=",".join(hosts) if isinstance(hosts, (list, tuple)) else hosts,
                     timeout=timeout, **kwargs)
    zk.start(timeout=timeout)
    return zk


def create_roots(hosts, user, password, roots=ROOTS):
    """Create FATE's root nodes readable and writable only by digest user:password."""
    from kazoo.security import make_digest_acl
    acl = [make_digest_acl(user, password, all=True)]
    zk = client(hosts, user, password)
    try:
        for root in roots:
            if zk.exists(root):
                zk.set_acls(root, acl)
            else:
                zk.create(root, b"", acl=acl, makepath=True)
    finally:
        zk.stop()
        zk.close()


def stop(pid, config_path=None):
    """SIGTERM the server if `pid` still is our QuorumPeerMain; returns whether a signal was sent."""
    if not is_ours(pid, config_path):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        return True
    except ProcessLookupError:
        return False


def is_ours(pid, config_path=None):
    if not pid or not _alive(pid):
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return False
    return MAIN_CLASS in argv and (config_path is None or config_path in argv)
