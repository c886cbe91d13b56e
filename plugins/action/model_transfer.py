# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin behind fate.flow.model_transfer (documentation: plugins/modules/model_transfer.py).

How the bytes move (transfer_mode=relay, the default)
------------------------------------------------------
The controller starts one helper session per endpoint, built from each host's resolved
connection settings (the ssh connection plugin builds the ssh command line, so ansible_host,
ansible_port, ansible_user, keys, ssh_args/common/extra args, host key checking, timeout and
passwords all apply as for any other task; a ``local`` connection runs ``/bin/sh -c`` directly).
The session answers the controller's probes and hashes over its stdin/stdout and then carries the
data, so each host costs one handshake:

* on the source, a small Python reader hashes the whole file (sha256, and sha1 when FATE's
  ``.sha1`` sidecar exists) and writes the bytes from the resume offset to stdout;
* on the destination, a small Python writer appends stdin to ``.<name>.part`` next to the final
  path and fsyncs it.

The controller joins the source's stdout pipe to the destination's stdin pipe with ``os.splice``
(Linux; a plain read/write loop elsewhere): the data never enters Python, the only buffers are the
two pipes (``buffer_size`` each), nothing is written to the controller's disk, and the byte count
drives the progress lines. The sessions use their own ssh connections without compression (zips
are compressed already) and without the ControlPersist master (which may have been opened with -C).

Then the destination re-reads the ``.part`` (verify=true), compares its sha256 with the source's,
applies owner/group/mode and renames it onto the final path. Nothing ever sits half-written at the
final path.

transfer_mode=direct runs, on the destination, ``ssh -n <source> <reader> | <writer>``: the
controller only carries progress lines and the summaries.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import select
import shlex
import subprocess
import time

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.playbook.play_context import PlayContext
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import connection_loader
from ansible.utils.display import Display

display = Display()

MIB = 1024 * 1024
MARK = 'FFXFER:'
PROGRESS_MARK = 'FFXFER-P:'
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported by Python 3.11's fcntl on every build
# Block size of the helpers' read, hash and write loops (at most buffer_size). Small enough that a
# block and its read-back copy stay in the CPU's cache between the copy and the hash; the helpers
# spent about twice the system time with 1 MiB blocks (measured, see docs/transfer.md).
HELPER_BLOCK = 64 * 1024
# Preferred ciphers for the data streams: OpenSSH's default set (>= 6.5), AES-GCM first (AES-NI makes
# it about twice as cheap as chacha20-poly1305). An explicit list: no '^' prefix, older clients reject it.
STREAM_CIPHERS = ('aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,'
                  'aes128-ctr,aes192-ctr,aes256-ctr')
_DEFAULT_CIPHERS = {}  # ssh binary -> its built-in cipher list (ssh -G -F /dev/null), or None

# Runs on the endpoints with their Python (ansible_python_interpreter, default python3), as
# ``python -c HELPER <op> <base64 json args>``. Results are printed as one "FFXFER:<json>" line on
# stdout, except for "send" (stdout is the data; the summary goes to stderr). The "session" op runs
# one op after another as the controller asks for them on stdin, so that one connection per host
# serves the whole task.
HELPER = r'''
import base64, errno, hashlib, json, os, stat, sys, time
MARK = "FFXFER:"
OP = sys.argv[1]
A = json.loads(base64.b64decode(sys.argv[2]).decode("utf-8"))
CH = int(A.get("chunk") or 1048576)
PENDING = b""  # stdin bytes the session read past a command line: the start of recv's data


def emit(data, stream=None):
    stream = stream or sys.stdout
    stream.write("\n" + MARK + json.dumps(data) + "\n")
    stream.flush()


def names(st):
    owner, group = str(st.st_uid), str(st.st_gid)
    try:
        import pwd
        owner = pwd.getpwuid(st.st_uid).pw_name
    except Exception:
        pass
    try:
        import grp
        group = grp.getgrgid(st.st_gid).gr_name
    except Exception:
        pass
    return owner, group


def fstat(path):
    try:
        st = os.stat(path)
    except OSError as exc:
        return {"exists": False, "errno": exc.errno, "error": exc.strerror}
    owner, group = names(st)
    return {"exists": True, "isreg": stat.S_ISREG(st.st_mode), "isdir": stat.S_ISDIR(st.st_mode),
            "size": st.st_size, "mode": "%04o" % stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "owner": owner, "group": group}


def free_bytes(path):
    while path and not os.path.isdir(path):
        path = os.path.dirname(path.rstrip("/")) or "/"
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize, path


def hash_file(path, length=None, sha1=False):
    h256 = hashlib.sha256()
    h1 = hashlib.sha1() if sha1 else None
    done = 0
    with open(path, "rb") as handle:
        while length is None or done < length:
            want = CH if length is None else min(CH, length - done)
            block = handle.read(want)
            if not block:
                break
            h256.update(block)
            if h1 is not None:
                h1.update(block)
            done += len(block)
    return {"sha256": h256.hexdigest(), "sha1": h1.hexdigest() if h1 else None, "bytes": done}


def resolve_ids(owner, group):
    uid = gid = -1
    if owner not in (None, ""):
        if str(owner).isdigit():
            uid = int(owner)
        else:
            import pwd
            try:
                uid = pwd.getpwnam(owner).pw_uid
            except KeyError:
                raise ValueError("owner %r does not exist" % owner)
    if group not in (None, ""):
        if str(group).isdigit():
            gid = int(group)
        else:
            import grp
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError("group %r does not exist" % group)
    return uid, gid


def start_syncer(fd):
    # Flushes the file to disk in a thread of its own while data still arrives, then drops the
    # flushed pages from the cache: the fsync before the rename then only waits for the last few
    # MiB (measured on a 100 MiB stream: 0.1 s -> 0.01 s; posix_fadvise alone did not shorten it).
    # Returns flush(upto) and stop(), which ends the thread and returns its OSError, if any (a
    # write-back error is reported once per open file, so the thread's is the one to report).
    import threading
    state = {"upto": 0, "stop": False, "error": None}
    cond = threading.Condition()
    sync = getattr(os, "fdatasync", os.fsync)
    advise = getattr(os, "posix_fadvise", None)

    def loop():
        done = 0
        while True:
            with cond:
                while state["upto"] == done and not state["stop"]:
                    cond.wait()
                if state["stop"]:
                    return
                upto = state["upto"]
            try:
                sync(fd)
                if advise is not None:
                    advise(fd, done, upto - done, os.POSIX_FADV_DONTNEED)
            except OSError as exc:
                state["error"] = exc
                return
            done = upto

    thread = threading.Thread(target=loop)
    thread.daemon = True
    thread.start()

    def flush(upto):
        with cond:
            state["upto"] = upto
            cond.notify()

    def stop():
        with cond:
            state["stop"] = True
            cond.notify()
        thread.join()
        return state["error"]
    return flush, stop


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def op_src_probe():
    path = A["path"]
    info = {"file": fstat(path), "readable": os.access(path, os.R_OK)}
    side = path + ".sha1"
    if A.get("sidecar") and os.path.isfile(side):
        try:
            with open(side, "rb") as handle:
                text = handle.read(4096).decode("ascii", "replace").strip()
            info["sidecar"] = text.split()[0].lower() if text else ""
        except OSError as exc:
            info["sidecar_error"] = str(exc)
    emit(info)


def op_dst_probe():
    dest = A["dest"]
    isdir = dest.endswith("/") or os.path.isdir(dest)
    final = os.path.join(dest, A["basename"]) if isdir else dest
    final = os.path.normpath(final)
    folder = os.path.dirname(final) or "/"
    part = os.path.join(folder, "." + os.path.basename(final) + ".part")
    free, free_path = free_bytes(folder)
    info = {"final": final, "dir": folder, "part": part, "dir_stat": fstat(folder),
            "final_stat": fstat(final), "part_stat": fstat(part), "free": free, "free_path": free_path}
    try:
        info["uid"], info["gid"] = resolve_ids(A.get("owner"), A.get("group"))
    except ValueError as exc:
        info["id_error"] = str(exc)
    emit(info)


def op_hash():
    try:
        emit(hash_file(A["path"], A.get("length"), A.get("sha1")))
    except OSError as exc:
        emit({"error": "%s: %s" % (A["path"], exc.strerror)})


def op_mkdir():
    try:
        os.makedirs(A["path"])
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(A["path"]):
            emit({"error": "cannot create %s: %s" % (A["path"], exc.strerror)})
            return
    emit({"created": True})


def op_rm():
    try:
        os.unlink(A["path"])
        emit({"removed": True})
    except FileNotFoundError:
        emit({"removed": False})
    except OSError as exc:
        emit({"error": "cannot remove %s: %s" % (A["path"], exc.strerror)})


def op_send():
    h256 = hashlib.sha256()
    h1 = hashlib.sha1() if A.get("sha1") else None
    offset = int(A.get("offset") or 0)
    sent = read = 0
    out = sys.stdout.fileno()
    buf = bytearray(CH)
    view = memoryview(buf)
    try:
        with open(A["path"], "rb", buffering=0) as handle:
            while True:
                n = handle.readinto(buf)
                if not n:
                    break
                block = view[:n]
                h256.update(block)
                if h1 is not None:
                    h1.update(block)
                if read + n > offset:
                    start = max(0, offset - read)
                    write_all(out, block[start:])
                    sent += n - start
                read += n
    except BrokenPipeError:
        emit({"error": "the receiving side closed the stream", "sent": sent}, sys.stderr)
        sys.exit(3)
    except OSError as exc:
        emit({"error": "%s: %s" % (A["path"], exc.strerror), "sent": sent}, sys.stderr)
        sys.exit(2)
    emit({"sha256": h256.hexdigest(), "sha1": h1.hexdigest() if h1 else None, "bytes": read,
          "sent": sent}, sys.stderr)


def op_recv():
    # Writes stdin to the .part file from `offset` on and hashes the whole file on the way: the
    # existing prefix is read back from the file, and (verify) each block is read back from the
    # file right after it was written, so the sha256 is that of what the file holds.
    # With `length`, exactly that many bytes are data; with `trailer`, one JSON line follows them:
    # {"action": "commit", "sha256", "final", "uid", "gid", "mode"} | {"action": "keep"|"remove"}.
    part = A["part"]
    offset = int(A.get("offset") or 0)
    length = A.get("length")
    verify = bool(A.get("verify", True))
    progress = float(A.get("progress") or 0)
    inp = sys.stdin.fileno()
    pending = PENDING
    leftover = b""
    if length is not None and len(pending) > length:
        pending, leftover = pending[:length], pending[length:]
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(part, flags, 0o600)
    except OSError as exc:
        emit({"error": "cannot write %s: %s" % (part, exc.strerror), "errno": exc.errno})
        return
    h256 = hashlib.sha256()
    written = 0
    last = time.time()
    buf = bytearray(CH)
    view = memoryview(buf)
    back = bytearray(CH) if verify else None
    bview = memoryview(back) if verify else None
    flush, stop = start_syncer(fd)
    flushed = offset
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            emit({"error": "%s shrank to %d bytes while resuming at %d" % (part, size, offset)})
            return
        if size != offset:
            os.ftruncate(fd, offset)
        pos = 0
        while pos < offset:
            n = os.preadv(fd, [view[:min(CH, offset - pos)]], pos)
            if not n:
                emit({"error": "%s: cannot read back the first %d bytes" % (part, offset)})
                return
            h256.update(view[:n])
            pos += n
        os.lseek(fd, offset, os.SEEK_SET)
        while length is None or written < length:
            if pending:
                n = min(len(pending), CH)
                view[:n] = pending[:n]
                pending = pending[n:]
            else:
                want = CH if length is None else min(CH, length - written)
                n = os.readv(inp, [view[:want]])
                if not n:
                    break
            write_all(fd, view[:n])
            if verify:
                got = os.preadv(fd, [bview[:n]], pos)
                h256.update(bview[:got])
                if got != n:
                    emit({"error": "%s: read back %d of %d bytes at offset %d" % (part, got, n, pos)})
                    return
            else:
                h256.update(view[:n])
            pos += n
            written += n
            if pos - flushed >= 16777216:
                flush(pos)
                flushed = pos
            if progress and time.time() - last >= progress:
                last = time.time()
                sys.stderr.write("\nFFXFER-P:%d\n" % written)
                sys.stderr.flush()
        failed = stop()
        if failed is not None:
            raise failed
        os.fsync(fd)
    except OSError as exc:
        free = None
        try:
            free = free_bytes(os.path.dirname(part))[0]
        except OSError:
            pass
        emit({"error": "%s: %s" % (part, exc.strerror), "errno": exc.errno,
              "enospc": exc.errno in (errno.ENOSPC, errno.EDQUOT), "written": written, "free": free})
        return
    finally:
        stop()
        os.close(fd)
    result = {"written": written, "size": offset + written, "sha256": h256.hexdigest()}
    if not A.get("trailer"):
        emit(result)
        return
    line = leftover
    while b"\n" not in line and len(line) < 65536:
        block = os.read(inp, 4096)
        if not block:
            break
        line += block
    try:
        trailer = json.loads(line.split(b"\n", 1)[0].decode("utf-8"))
    except ValueError:
        trailer = {"action": "keep"}
    action = trailer.get("action")
    if action == "remove" or (action == "commit" and trailer.get("sha256") != result["sha256"]):
        try:
            os.unlink(part)
        except OSError:
            pass
        if action == "commit":
            result.update(error="mismatch", actual=result["sha256"], expected=trailer.get("sha256"))
        result["removed"] = True
        emit(result)
        return
    if action != "commit":
        emit(result)
        return
    A.update(trailer)
    A["part"] = part
    op_finish(result)


def op_finish(extra=None):
    part, final = A["part"], A["final"]
    try:
        uid, gid = int(A.get("uid", -1)), int(A.get("gid", -1))
        if uid != -1 or gid != -1:
            os.chown(part, uid, gid)
        if A.get("mode") is not None:
            os.chmod(part, int(A["mode"], 8))
        os.rename(part, final)
        dfd = os.open(os.path.dirname(final) or "/", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        emit(dict(extra or {}, error="%s: %s" % (exc.filename or part, exc.strerror)))
        return
    emit(dict(extra or {}, final=fstat(final), committed=True))


def op_attrs():
    path = A["path"]
    st = os.stat(path)
    uid, gid = int(A.get("uid", -1)), int(A.get("gid", -1))
    changed = []
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        changed.append("owner")
        if not A.get("check"):
            os.chown(path, uid, gid)
    if A.get("mode") is not None and stat.S_IMODE(st.st_mode) != int(A["mode"], 8):
        changed.append("mode")
        if not A.get("check"):
            os.chmod(path, int(A["mode"], 8))
    emit({"changed": changed, "final": fstat(path)})


def run(op):
    try:
        globals()["op_" + op]()
    except SystemExit:
        raise
    except Exception as exc:
        emit({"error": "%s: %s" % (type(exc).__name__, exc)}, sys.stderr if op == "send" else sys.stdout)
        return False
    return True


def op_session():
    # stdin: anything (a become password sudo did not ask for) up to the marker line, then one
    # {"op": ..., "args": ...} line per op; "send" and "recv" take over stdout or stdin and end it
    global A, CH, PENDING
    inp = sys.stdin.fileno()
    token = A["marker"].encode("ascii") + b"\n"
    buf = b""
    while token not in buf:
        block = os.read(inp, 4096)
        if not block:
            return
        buf += block
    buf = buf.split(token, 1)[1]
    while True:
        while b"\n" not in buf:
            block = os.read(inp, 65536)
            if not block:
                return
            buf += block
        line, buf = buf.split(b"\n", 1)
        command = json.loads(line.decode("utf-8"))
        A = command["args"]
        CH = int(A.get("chunk") or CH)
        PENDING, buf = buf, b""
        if command["op"] in ("send", "recv"):
            sys.exit(0 if run(command["op"]) else 1)
        run(command["op"])
        buf, PENDING = PENDING, b""


if not run(OP):
    sys.exit(1)
'''


class TransferError(Exception):
    """Fails the task; `result` holds extra return values."""

    def __init__(self, msg, **result):
        super(TransferError, self).__init__(msg)
        self.result = result


def _mib(n):
    return '%.1f MiB' % (n / float(MIB))


def _parse_marked(text):
    """Last FFXFER:<json> line of a text, or None."""
    found = None
    for line in to_text(text, errors='surrogate_or_replace').splitlines():
        line = line.strip()
        if line.startswith(MARK):
            try:
                found = json.loads(line[len(MARK):])
            except ValueError:
                pass
    return found


def _noise(text, limit=600):
    """stderr without our own marker lines, shortened, for error messages."""
    lines = [ln for ln in to_text(text, errors='surrogate_or_replace').splitlines()
             if ln.strip() and not ln.strip().startswith(('FFXFER', PROGRESS_MARK))]
    out = ' | '.join(lines)
    return out[-limit:]


def _sets_ciphers(args):
    """Whether ssh arguments choose ciphers themselves (-c SPEC, -cSPEC, -o Ciphers=..., -o 'Ciphers ...')."""
    args = [to_text(a, errors='surrogate_or_replace') for a in args]
    for i, arg in enumerate(args):
        if arg == '-c' or (arg.startswith('-c') and len(arg) > 2):
            return True
        option = None
        if arg == '-o' and i + 1 < len(args):
            option = args[i + 1]
        elif arg.startswith('-o') and len(arg) > 2:
            option = arg[2:]
        if option is not None and option.strip().lower().replace('=', ' ').split(None, 1)[:1] == ['ciphers']:
            return True
    return False


def _ssh_ciphers(argv):
    """The cipher list `ssh -G` reports for argv ([ssh binary, options..., host]), or None."""
    try:
        proc = subprocess.run([argv[0], '-G'] + list(argv[1:]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    for line in to_text(proc.stdout, errors='surrogate_or_replace').splitlines():
        if line.lower().startswith('ciphers '):
            return line.split(None, 1)[1].strip()
    return None


def _config_sets_ciphers(argv):
    """Whether ssh's configuration for argv (its -F file, ~/.ssh/config, /etc/ssh/ssh_config) chooses
    ciphers: `ssh -G` reports another list than ssh's built-in one. True when that cannot be told
    (ssh older than 6.8 has no -G): the user's ssh is then left as it is."""
    binary = argv[0]
    if binary not in _DEFAULT_CIPHERS:
        _DEFAULT_CIPHERS[binary] = _ssh_ciphers([binary, '-F', '/dev/null', 'localhost'])
    default = _DEFAULT_CIPHERS[binary]
    effective = _ssh_ciphers(argv)
    return default is None or effective is None or effective != default


class Endpoint(object):
    """One side of a transfer: how to run a shell command there from the controller."""

    def __init__(self, name, kind, conn, python, become, address=None, port=None, user=None):
        self.name = name
        self.kind = kind          # 'ssh' or 'local'
        self.conn = conn          # the ssh connection plugin instance (kind == 'ssh')
        self.python = python
        self.become = become      # None or dict(method, user, password)
        self.address = address
        self.port = port
        self.user = user
        self.stream_ciphers = ''  # set by the action: cipher preference for the data streams

    def describe(self):
        if self.kind == 'local':
            return "host '%s' (local connection)" % self.name
        where = self.address or self.name
        if self.port:
            where = '%s:%s' % (where, self.port)
        if self.user:
            where = '%s@%s' % (self.user, where)
        return "host '%s' (%s)" % (self.name, where)

    def helper_command(self, op, args):
        payload = base64.b64encode(to_bytes(json.dumps(args))).decode('ascii')
        return '%s -c %s %s %s' % (shlex.quote(self.python), shlex.quote(HELPER), op, payload)

    def wrap(self, command):
        """The command as this host's (become) user, as one string for the remote login shell."""
        inner = '/bin/sh -c %s' % shlex.quote(command)
        if not self.become:
            return inner
        method, user = self.become['method'], self.become['user'] or 'root'
        if method == 'sudo':
            if self.become.get('password'):
                return "sudo -H -S -p '' -u %s %s" % (shlex.quote(user), inner)
            return 'sudo -H -S -n -u %s %s' % (shlex.quote(user), inner)
        if method == 'su':
            return 'su -s /bin/sh %s -c %s' % (shlex.quote(user), shlex.quote(command))
        raise TransferError('become_method %r is not supported by fate.flow.model_transfer on %s '
                            '(use sudo, or su from root)' % (method, self.describe()))

    def _cipher_args(self, argv):
        """-o Ciphers=<stream_ciphers> for a data stream, unless the user's ssh settings choose ciphers.

        argv: the ssh command Ansible built for this host, from the binary to the host name."""
        if not self.stream_ciphers:
            return []
        if _sets_ciphers(argv[1:]):
            display.vvv('model_transfer: the ssh arguments of %s choose ciphers: kept' % self.describe())
            return []
        if _config_sets_ciphers([to_text(a, errors='surrogate_or_strict') for a in argv]):
            display.vvv('model_transfer: the ssh configuration of %s chooses ciphers (or ssh -G cannot tell): '
                        'kept' % self.describe())
            return []
        return [b'-o', to_bytes('Ciphers=%s' % self.stream_ciphers)]

    def stdin_prefix(self):
        if self.become and self.become['method'] == 'sudo' and self.become.get('password'):
            return to_bytes(self.become['password']) + b'\n'
        return b''

    def argv(self, command, stream=False):
        """Controller-side argv running `command` (a shell string) on this endpoint.

        Returns (argv, pass_fds, password_pipe_writer)."""
        wrapped = self.wrap(command)
        if self.kind == 'local':
            return ['/bin/sh', '-c', wrapped], (), None
        conn = self.conn
        binary = conn.get_option('ssh_executable')
        cmd = conn._build_command(binary, 'ssh', conn.get_option('host'), wrapped)
        b_binary = to_bytes(binary)
        cmd = [a for a in cmd if a != b'-C']
        at = cmd.index(b_binary) + 1 if b_binary in cmd else 1
        extra = [b'-o', b'Compression=no']
        if stream:
            # a connection of its own: the ControlPersist master may have been opened with -C
            extra += [b'-o', b'ControlMaster=no', b'-o', b'ControlPath=none']
            extra += self._cipher_args(cmd[at - 1:-1])
        cmd[at:at] = extra
        if stream:
            display.vvv('model_transfer: data stream to %s: %s' % (
                self.describe(), ' '.join(shlex.quote(to_text(a)) for a in cmd[at - 1:-1])))
        pipe = getattr(conn, 'sshpass_pipe', None)
        if pipe:
            conn.sshpass_pipe = None
            password = conn.get_option('password') or ''
            os.write(pipe[1], to_bytes(password) + b'\n')
            os.close(pipe[1])
            return cmd, (pipe[0],), pipe[0]
        return cmd, (), None


class Session(object):
    """One helper process on one endpoint, over one connection, for the whole task.

    Probes, hashes and the data stream all go through it, so each host costs one ssh handshake and
    one Python start. It is started as a data stream (its own connection, no compression, the cipher
    preference) because it may end up carrying the archive. Results are read straight from the pipe
    (never ahead of them: the helper writes nothing until it is asked for the next op), and stderr is
    drained alongside so that a chatty ssh (-vvv) cannot block it."""

    def __init__(self, action, ep):
        self.action = action
        self.ep = ep
        self.finished = False
        self.err = b''
        self.pending = b''
        marker = 'FFXFER-START-%s' % base64.b32encode(os.urandom(10)).decode('ascii')
        self.proc = action._spawn(ep, ep.helper_command('session', {'marker': marker}), stream=True)
        self._write(ep.stdin_prefix() + to_bytes(marker) + b'\n')

    def _write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # the helper is gone; result() reports why

    def request(self, op, args):
        self._write(to_bytes(json.dumps({'op': op, 'args': args})) + b'\n')
        if op in ('send', 'recv'):
            self.finished = True

    def result(self, op):
        """The JSON result of the op asked for last."""
        out, err = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        poller = select.poll()
        for fd in (out, err):
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        seen = b''
        mark = b'\n' + to_bytes(MARK)
        while True:
            at = self.pending.find(mark)
            end = self.pending.find(b'\n', at + 1) if at >= 0 else -1
            if end >= 0:
                line, self.pending = self.pending[at + len(mark):end], self.pending[end + 1:]
                try:
                    return json.loads(to_text(line, errors='surrogate_or_replace'))
                except ValueError:
                    continue
            open_fds = 0
            for fd, dummy in poller.poll(1000):
                block = os.read(fd, 65536)
                if fd == out:
                    if not block:
                        poller.unregister(out)
                        self.finished = True
                        self.proc.wait()
                        self.err += self._rest(err)
                        raise TransferError(self.action._failure_text(self.ep, op, self.proc.returncode, self.err,
                                                                      seen + self.pending))
                    seen += block if len(seen) < 65536 else b''
                    self.pending += block
                elif block:
                    self.err += block
                else:
                    poller.unregister(err)
                open_fds += 1
            if not open_fds:
                self.action._check_parent()

    @staticmethod
    def _rest(fd):
        chunks = []
        while True:
            try:
                block = os.read(fd, 65536)
            except OSError:
                break
            if not block:
                break
            chunks.append(block)
        return b''.join(chunks)

    def take_over(self):
        """The process, for the data stream that follows send/recv; stderr read so far comes with it."""
        if self.pending.strip():
            raise TransferError('unexpected output from the helper on %s before the data: %r'
                                % (self.ep.describe(), self.pending[:200]))
        return self.proc

    def close(self):
        proc = self.proc
        self.finished = True
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.stdin = None
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()  # validated by validate_argument_spec below

    ARGUMENT_SPEC = dict(
        src_host=dict(type='str', required=True),
        src=dict(type='str', required=True),
        dest_host=dict(type='str'),
        dest=dict(type='str', required=True),
        transfer_mode=dict(type='str', default='relay', choices=['relay', 'direct']),
        verify=dict(type='bool', default=True),
        owner=dict(type='str'),
        group=dict(type='str'),
        mode=dict(type='raw', default='0600'),
        force=dict(type='bool', default=True),
        resume=dict(type='bool', default=True),
        create_dest_dir=dict(type='bool', default=False),
        check_space=dict(type='bool', default=True),
        buffer_size=dict(type='int', default=MIB),
        progress_interval=dict(type='float', default=5.0),
        direct_source_address=dict(type='str'),
        direct_source_port=dict(type='int'),
        direct_source_user=dict(type='str'),
        direct_ssh_args=dict(type='str', default=''),
        stream_ciphers=dict(type='str', default=STREAM_CIPHERS),
    )

    # ------------------------------------------------------------------ entry point
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        self._args = args
        started = self._started = time.time()
        self._parent = os.getppid()
        self._sessions = {}
        try:
            out = self._transfer(args, task_vars)
        except TransferError as exc:
            result.update(exc.result)
            result.update(failed=True, msg=to_text(exc))
            result.setdefault('changed', False)
            return result
        finally:
            self._close_sessions()
        out['seconds'] = round(time.time() - started, 3)
        moved = out.get('bytes_transferred', 0)
        spent = out.get('_stream_seconds') or out['seconds']
        out.pop('_stream_seconds', None)
        out['throughput'] = round(moved / float(MIB) / spent, 1) if moved and spent > 0 else 0.0
        result.update(out)
        return result

    # ------------------------------------------------------------------ endpoints
    def _host_vars(self, name, task_vars):
        hostvars = task_vars.get('hostvars') or {}
        if name not in hostvars:
            raise TransferError("host '%s' is not in the inventory" % name)
        return hostvars[name]

    def _endpoint(self, name, task_vars, current):
        """Endpoint for inventory host `name`; `current` = the task's own host and connection."""
        if current:
            hv = task_vars
            templar = self._templar
        else:
            hv = self._host_vars(name, task_vars)
            templar = self._templar.copy_with_new_env(available_variables=hv)

        def var(*keys, **kw):
            for key in keys:
                try:
                    if key in hv and hv[key] is not None:
                        return templar.template(hv[key])
                except KeyError:
                    continue
            return kw.get('default')

        python = var('ansible_python_interpreter')
        if not python:
            facts = var('ansible_facts', default={}) or {}
            python = facts.get('discovered_interpreter_python') or 'python3'

        if current:
            conn = self._connection
            kind = self._conn_kind(getattr(conn, '_load_name', '') or conn.transport)
            become = None
            if conn.become is not None:
                become = {'method': self._short(conn.become.name),
                          'user': conn.become.get_option('become_user'),
                          'password': conn.become.get_option('become_pass')}
            if kind == 'local':
                return Endpoint(name, 'local', None, python, become)
            if kind != 'ssh':
                raise TransferError("host '%s' uses the %r connection: fate.flow.model_transfer needs ssh or local"
                                    % (name, conn.transport))
            if not getattr(conn, 'host', None):
                conn.host = conn.get_option('host')
            return Endpoint(name, 'ssh', conn, python, become, address=conn.get_option('host'),
                            port=conn.get_option('port'), user=conn.get_option('remote_user'))

        conn_type = self._conn_kind(var('ansible_connection', default=self._play_context.connection or 'ssh'))
        become = None
        enabled = var('ansible_become')
        enabled = self._task.become if enabled is None else boolean(enabled, strict=False)
        if enabled:
            become = {'method': self._short(var('ansible_become_method', default=self._task.become_method or 'sudo')),
                      'user': var('ansible_become_user', default=self._task.become_user or 'root'),
                      'password': var('ansible_become_password', 'ansible_become_pass')}
        if conn_type == 'local':
            return Endpoint(name, 'local', None, python, become)
        if conn_type != 'ssh':
            raise TransferError("host '%s' uses the %r connection: fate.flow.model_transfer needs ssh or local"
                                % (name, conn_type))
        conn = connection_loader.get('ssh', PlayContext())
        option_vars = C.config.get_plugin_vars('connection', conn._load_name)
        var_options = {}
        for key in option_vars:
            value = var(key)
            if value is not None:
                var_options[key] = value
        var_options.setdefault('inventory_hostname', name)
        task_keys = self._task.dump_attrs()
        task_keys['timeout'] = self._play_context.timeout
        task_keys.pop('retries', None)
        # the task's remote_user keyword belongs to the task's own host, not to this one
        task_keys.pop('remote_user', None)
        conn.set_options(task_keys=task_keys, var_options=var_options)
        host = conn.get_option('host') or name
        conn.host = host
        return Endpoint(name, 'ssh', conn, python, become, address=host, port=conn.get_option('port'),
                        user=conn.get_option('remote_user'))

    @staticmethod
    def _short(name):
        name = to_text(name or '')
        return name.rsplit('.', 1)[-1]

    def _conn_kind(self, name):
        name = self._short(name)
        return 'ssh' if name in ('smart', 'ssh') else name

    # ------------------------------------------------------------------ running things
    def _spawn(self, ep, command, stream=False):
        argv, fds, close_fd = ep.argv(command, stream=stream)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=fds,
                                    start_new_session=False)
        except OSError as exc:
            raise TransferError('cannot run %s for %s: %s' % (to_native(argv[0]), ep.describe(), exc))
        finally:
            if close_fd is not None:
                os.close(close_fd)
        return proc

    def _session(self, ep):
        """The endpoint's helper session, started on first use (again after send/recv ended one)."""
        session = self._sessions.get(id(ep))
        if session is None or session.finished:
            session = self._sessions[id(ep)] = Session(self, ep)
        return session

    def _close_sessions(self):
        for session in self._sessions.values():
            session.close()
        self._sessions = {}

    def _helper(self, ep, op, args):
        """Ask the endpoint's session for an op; returns a callable giving its JSON result (so that
        both hosts work at once)."""
        session = self._session(ep)
        session.request(op, dict(args, chunk=self._block()))
        return lambda: session.result(op)

    def _block(self):
        return min(self._args['buffer_size'], HELPER_BLOCK)

    @staticmethod
    def _gather(*waiters):
        """Results of helpers started together; every one is waited for before an error is raised."""
        results, error = [], None
        for wait in waiters:
            try:
                results.append(wait())
            except TransferError as exc:
                results.append(None)
                error = error or exc
        if error is not None:
            raise error
        return results

    def _call(self, ep, op, args):
        return self._helper(ep, op, args)()

    def _failure_text(self, ep, what, rc, err, out=b''):
        detail = _noise(err) or _noise(out) or 'no output'
        if ep.kind == 'ssh' and rc == 255:
            return 'ssh to %s failed (exit 255) during %s: %s' % (ep.describe(), what, detail)
        return '%s on %s failed (exit %s): %s' % (what, ep.describe(), rc, detail)

    # ------------------------------------------------------------------ the transfer
    def _transfer(self, args, task_vars):
        check = bool(self._task.check_mode)
        inventory_host = task_vars.get('inventory_hostname')
        dest_name = args['dest_host'] or inventory_host
        src_name = args['src_host']
        mode = args['mode']
        if mode is not None:
            mode = '%04o' % mode if isinstance(mode, int) else to_text(mode).strip()
            try:
                if int(mode, 8) > 0o7777:
                    raise ValueError()
            except ValueError:
                raise TransferError('mode must be an octal number such as 0600, got %r' % (args['mode'],))
        if args['buffer_size'] < 4096:
            raise TransferError('buffer_size must be at least 4096 bytes')
        src_path, dest_path = args['src'], args['dest']
        if not posixpath.isabs(src_path) or not posixpath.isabs(dest_path):
            raise TransferError('src and dest must be absolute paths (src=%r, dest=%r)' % (src_path, dest_path))
        if src_path.endswith('/'):
            raise TransferError('src must be a file, not a directory: %r' % src_path)
        ciphers = (args['stream_ciphers'] or '').strip()
        if ciphers and (any(c.isspace() for c in ciphers) or '' in ciphers.split(',')
                        or not all(c.isalnum() or c in '@.,_+^-' for c in ciphers)):
            raise TransferError('stream_ciphers must be a comma-separated list of ssh cipher names such as %s, '
                                'got %r' % (STREAM_CIPHERS, args['stream_ciphers']))

        # the source is always resolved from its inventory variables; the destination is the task's
        # own connection (delegate_to included) unless dest_host names another host
        src = self._endpoint(src_name, task_vars, current=False)
        dst = self._endpoint(dest_name, task_vars, current=(args['dest_host'] in (None, inventory_host)))
        src.stream_ciphers = dst.stream_ciphers = ciphers
        base = dict(src=src_path, src_host=src_name, dest_host=dest_name, transfer_mode=args['transfer_mode'],
                    bytes_transferred=0, resumed=False)

        # 1. what is there (both sides at once)
        want_sidecar = True
        w_src = self._helper(src, 'src_probe', {'path': src_path, 'sidecar': want_sidecar})
        w_dst = self._helper(dst, 'dst_probe', {'dest': dest_path, 'basename': posixpath.basename(src_path),
                                                'owner': args['owner'], 'group': args['group']})
        sp, dp = self._gather(w_src, w_dst)
        sf = sp['file']
        if not sf['exists']:
            raise TransferError('source file %s does not exist on %s (%s)'
                                % (src_path, src.describe(), sf.get('error')), **base)
        if not sf['isreg']:
            raise TransferError('source %s on %s is not a regular file' % (src_path, src.describe()), **base)
        if not sp['readable']:
            raise TransferError('source file %s on %s is not readable by the connecting (or become) user'
                                % (src_path, src.describe()), **base)
        if 'sidecar_error' in sp:
            raise TransferError('cannot read %s.sha1 on %s: %s' % (src_path, src.describe(), sp['sidecar_error']))
        size = sf['size']
        sidecar = sp.get('sidecar')
        final, folder, part = dp['final'], dp['dir'], dp['part']
        base.update(dest=final, size=size)
        if 'id_error' in dp:
            raise TransferError('on %s: %s' % (dst.describe(), dp['id_error']), **base)
        ids = {'uid': dp['uid'], 'gid': dp['gid'], 'mode': mode}

        if final == part or posixpath.basename(final) in ('', '.', '..'):
            raise TransferError('invalid destination %r' % final, **base)
        fs = dp['final_stat']
        if fs['exists'] and fs['isdir']:
            raise TransferError('destination %s on %s is a directory' % (final, dst.describe()), **base)
        if fs['exists'] and not fs['isreg']:
            raise TransferError('destination %s on %s exists and is not a regular file' % (final, dst.describe()),
                                **base)

        # 2. already there?
        if fs['exists'] and (not args['force'] or fs['size'] == size):
            if not args['force']:
                keep_msg = '%s exists and force=false: left as it is' % final
                return self._keep(dst, final, ids, check, base, dict(msg=keep_msg))
            w1 = self._helper(src, 'hash', {'path': src_path, 'sha1': bool(sidecar)})
            w2 = self._helper(dst, 'hash', {'path': final})
            h_src, h_dst = self._gather(w1, w2)
            for h, ep, p in ((h_src, src, src_path), (h_dst, dst, final)):
                if 'error' in h:
                    raise TransferError('cannot read %s on %s: %s' % (p, ep.describe(), h['error']), **base)
            self._check_sidecar(sidecar, h_src.get('sha1'), src, src_path, base)
            if h_src['sha256'] == h_dst['sha256']:
                base['sha256'] = h_src['sha256']
                if sidecar:
                    base['sha1'] = h_src['sha1']
                return self._keep(dst, final, ids, check, base, dict(msg='%s already holds the same data' % final))
            display.vv('model_transfer: %s differs from the source (sha256 %s, source %s): replacing it'
                       % (final, h_dst['sha256'], h_src['sha256']))

        # 3. resume?
        offset = 0
        ps = dp['part_stat']
        if ps['exists'] and args['resume'] and ps.get('isreg') and 0 < ps['size'] < size:
            w1 = self._helper(src, 'hash', {'path': src_path, 'length': ps['size']})
            w2 = self._helper(dst, 'hash', {'path': part})
            h1, h2 = self._gather(w1, w2)
            if 'error' not in h1 and 'error' not in h2 and h1['sha256'] == h2['sha256'] \
                    and h1['bytes'] == ps['size']:
                offset = ps['size']
                display.vv('model_transfer: resuming %s at %d bytes' % (part, offset))
        need = size - offset

        # 4. room?
        dir_missing = not dp['dir_stat']['exists']
        if dir_missing and not args['create_dest_dir']:
            raise TransferError('destination directory %s does not exist on %s (set create_dest_dir: true to '
                                'create it)' % (folder, dst.describe()), **base)
        if not dir_missing and not dp['dir_stat']['isdir']:
            raise TransferError('%s on %s is not a directory' % (folder, dst.describe()), **base)
        free = dp['free'] + (ps['size'] if ps['exists'] and not offset else 0)
        if args['check_space'] and need > free:
            if ps['exists'] and not offset and not check:
                self._call(dst, 'rm', {'path': part})
            raise TransferError(
                'not enough space on %s: %d bytes (%s) are needed in %s for %s, only %d bytes (%s) are free; '
                'the source is untouched and nothing was written. Free at least %d bytes there, or choose another '
                'dest (fate_transfer_dir in the playbooks), then run again' % (
                    dst.describe(), need, _mib(need), dp['free_path'], final, free, _mib(free), need - free),
                needed_bytes=need, free_bytes=free, **base)

        if check:
            base.update(changed=True, bytes_transferred=need, resumed=bool(offset), resumed_from=offset,
                        msg='would move %d bytes (%s) from %s:%s to %s:%s' % (
                            need, _mib(need), src_name, src_path, dest_name, final))
            return base

        if dir_missing:
            made = self._call(dst, 'mkdir', {'path': folder})
            if 'error' in made:
                raise TransferError('on %s: %s' % (dst.describe(), made['error']), **base)

        # 5. move; 6. compare and put in place
        t0 = time.time()
        job = dict(src=src, dst=dst, src_path=src_path, part=part, final=final, offset=offset, size=size,
                   sidecar=sidecar, ids=ids, base=base)
        if args['transfer_mode'] == 'relay':
            summary, recv, moved = self._relay(job)
            final_stat = recv['final']
        else:
            # the data goes over the destination's own ssh to the source: the inspection sessions would sit idle
            # for the whole transfer (where a firewall may drop idle connections), so the steps after it open
            # fresh ones
            self._close_sessions()
            summary, recv, moved = self._direct(job)
            action, problem = self._judge(job, summary, recv.get('sha256'), moved)
            if problem:
                if action == 'remove':
                    self._call(dst, 'rm', {'path': part})
                raise problem
            fin = self._call(dst, 'finish', dict(ids, part=part, final=final))
            if 'error' in fin:
                raise TransferError('cannot put %s in place on %s: %s' % (final, dst.describe(), fin['error']),
                                    **base)
            final_stat = fin['final']
        stream_seconds = time.time() - t0
        display.vvv('model_transfer: inspected in %.2f s, moved and put in place in %.2f s'
                    % (t0 - self._started, stream_seconds))
        base['sha256'] = summary['sha256']
        if sidecar:
            base['sha1'] = summary['sha1']
        base.update(changed=True, bytes_transferred=moved, resumed=bool(offset), resumed_from=offset,
                    verified=bool(args['verify']), owner=final_stat['owner'], group=final_stat['group'],
                    mode=final_stat['mode'], _stream_seconds=stream_seconds,
                    msg='moved %s from %s:%s to %s:%s%s' % (
                        _mib(moved), src_name, src_path, dest_name, final,
                        ' (resumed at %d bytes)' % offset if offset else ''))
        return base

    def _judge(self, job, summary, received_sha256, moved):
        """After the stream: (action for the .part, TransferError or None). Action: commit, keep or remove."""
        src, dst, part, base = job['src'], job['dst'], job['part'], job['base']
        need = job['size'] - job['offset']
        if summary is None or summary.get('error') or moved != need or summary.get('bytes') != job['size']:
            if summary is not None and summary.get('bytes', 0) > job['size']:
                return 'remove', TransferError(
                    'source file %s on %s changed while it was read (%d bytes, %d expected); the partial copy was '
                    'removed' % (job['src_path'], src.describe(), summary['bytes'], job['size']), **base)
            detail = summary.get('error') if summary else 'no summary from the source'
            return 'keep', TransferError(
                'the source stream of %s on %s ended early (%s): %d of %d bytes arrived; the partial copy %s on %s '
                'is kept for resuming' % (job['src_path'], src.describe(), detail, moved, need, part, dst.name),
                **base)
        sidecar = job['sidecar']
        if sidecar is not None and summary.get('sha1') != sidecar:
            try:
                self._check_sidecar(sidecar, summary.get('sha1'), src, job['src_path'], base)
            except TransferError as exc:
                return 'remove', exc
        if received_sha256 is not None and received_sha256 != summary['sha256']:
            return 'remove', TransferError(
                'what arrived in %s on %s does not match the source: sha256 %s, source %s; the partial copy was '
                'removed' % (part, dst.describe(), received_sha256, summary['sha256']), **base)
        return 'commit', None

    def _check_sidecar(self, sidecar, actual, src, src_path, base):
        if sidecar is None:
            return
        if actual != sidecar:
            raise TransferError(
                'source archive %s on %s does not match its .sha1 sidecar: the sidecar says %s, the archive hashes '
                'to %s; nothing was put at the destination' % (
                    src_path, src.describe(), sidecar or '(empty)', actual), **base)

    def _keep(self, dst, final, ids, check, base, extra):
        got = self._call(dst, 'attrs', dict(ids, path=final, check=check))
        if 'error' in got:
            raise TransferError('on %s: %s' % (dst.describe(), got['error']), **base)
        base.update(extra)
        base.update(changed=bool(got['changed']), owner=got['final']['owner'], group=got['final']['group'],
                    mode=got['final']['mode'])
        if got['changed']:
            base['msg'] += '; %s %s' % ('would change' if check else 'changed', ' and '.join(got['changed']))
        return base

    # ------------------------------------------------------------------ relay
    def _progress(self, state, done, total, force=False):
        now = time.time()
        interval = self._args['progress_interval']
        if interval <= 0 or done <= 0 or (not force and now - state['last'] < interval):
            return
        state['last'] = now
        spent = now - state['t0']
        rate = done / float(MIB) / spent if spent > 0 else 0.0
        pct = 100.0 * done / total if total else 100.0
        eta = (total - done) / (rate * MIB) if rate > 0 else 0
        display.display('model_transfer %s: %s of %s (%.0f%%), %.1f MiB/s, %.0f s left' % (
            state['label'], _mib(done), _mib(total), pct, rate, eta))

    def _relay(self, job):
        src, dst, part, base = job['src'], job['dst'], job['part'], job['base']
        offset, size = job['offset'], job['size']
        bufsize = self._args['buffer_size']
        need = size - offset
        # the sessions that inspected both hosts carry the data: no second connection
        s_session, d_session = self._session(src), self._session(dst)
        s_session.request('send', {'path': job['src_path'], 'offset': offset, 'sha1': job['sidecar'] is not None,
                                   'chunk': self._block()})
        d_session.request('recv', {'part': part, 'offset': offset, 'chunk': self._block(),
                                   'verify': self._args['verify'], 'length': need, 'trailer': True})
        sp, dp = s_session.take_over(), d_session.take_over()
        state = {'t0': time.time(), 'last': time.time(), 'label': '%s:%s -> %s:%s' % (
            src.name, posixpath.basename(job['src_path']), dst.name, posixpath.basename(part))}
        moved = 0
        receiver_gone = False
        try:
            sp.stdin.close()
            sp.stdin = None
            moved, receiver_gone = self._pump(sp, dp, need, bufsize, state)
            if moved and time.time() - state['t0'] >= self._args['progress_interval'] > 0:
                self._progress(state, moved, need, force=True)
            if receiver_gone:
                sp.kill()
            s_out, s_err = sp.communicate()
            s_err = s_session.err + s_err
            send = _parse_marked(s_err)
            action, problem = self._judge(job, send, None, moved)
            if send is None and not receiver_gone:
                problem = TransferError(self._failure_text(src, 'reading %s' % job['src_path'], sp.returncode, s_err)
                                        + '; the partial copy %s on %s is kept for resuming' % (part, dst.name),
                                        **base)
            trailer = {'action': action}
            if action == 'commit':
                trailer.update(job['ids'], sha256=send['sha256'], final=job['final'])
            if not receiver_gone:
                try:
                    dp.stdin.write(to_bytes(json.dumps(trailer)) + b'\n')
                    dp.stdin.close()
                except OSError:
                    pass
            dp.stdin = None
            d_out, d_err = dp.communicate()
        except BaseException:
            for proc in (sp, dp):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise
        recv = _parse_marked(d_out)
        if recv is not None and recv.get('error'):
            self._receiver_error(dst, recv, job)
        if recv is None:
            raise TransferError(self._failure_text(dst, 'receiving into %s' % part, dp.returncode,
                                                   d_session.err + d_err, d_out) +
                                '; the partial copy (if any) is kept for resuming', **base)
        if problem:
            raise problem
        if not recv.get('committed'):
            raise TransferError('%s on %s was not put in place: %s' % (part, dst.describe(), recv), **base)
        return send, recv, moved

    def _pump(self, sp, dp, need, bufsize, state):
        """Move `need` bytes from the source's stdout pipe to the destination's stdin pipe."""
        rfd, wfd = sp.stdout.fileno(), dp.stdin.fileno()
        try:
            import fcntl
            for fd in (rfd, wfd):
                try:
                    fcntl.fcntl(fd, F_SETPIPE_SZ, bufsize)
                except OSError:
                    pass
        except ImportError:
            pass
        splice = getattr(os, 'splice', None)
        poller = select.poll()
        poller.register(rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        moved = 0
        while moved < need:
            self._check_parent()
            if not poller.poll(1000):
                self._progress(state, moved, need)
                if dp.poll() is not None:
                    return moved, True
                continue
            count = min(bufsize, need - moved)
            try:
                if splice is not None:
                    n = splice(rfd, wfd, count)
                else:
                    block = os.read(rfd, count)
                    n = len(block)
                    view = memoryview(block)
                    while view:
                        view = view[os.write(wfd, view):]
            except OSError as exc:
                if splice is not None and exc.errno in (errno.EINVAL, errno.ENOSYS) and moved == 0:
                    splice = None
                    continue
                if exc.errno == errno.EPIPE:
                    return moved, True
                raise TransferError('relaying the data on the controller failed: %s' % exc)
            if n == 0:
                break
            moved += n
            self._progress(state, moved, need)
        return moved, False

    def _check_parent(self):
        # Ansible's workers run in a session of their own: when ansible-playbook dies (killed, or the
        # controller's session ends) the worker is re-parented and would go on alone. Stop instead,
        # leaving the .part for the next run to resume.
        if os.getppid() != self._parent:
            raise TransferError('ansible-playbook went away: transfer stopped, the partial copy is kept for resuming')

    def _receiver_error(self, dst, recv, job):
        part, base = job['part'], job['base']
        need = job['size'] - job['offset']
        if recv.get('enospc'):
            self._call(dst, 'rm', {'path': part})
            raise TransferError(
                'not enough space on %s: writing %s ran out of space after %d bytes; %d bytes (%s) are needed in '
                '%s (%s free now). The partial copy was removed; the source is untouched. Free that much space '
                'there, or choose another dest (fate_transfer_dir in the playbooks), then run again' % (
                    dst.describe(), part, recv.get('written', 0), need, _mib(need), posixpath.dirname(part),
                    _mib(recv['free']) if recv.get('free') is not None else 'unknown'),
                needed_bytes=need, **base)
        if recv.get('error') == 'mismatch':
            raise TransferError('what arrived in %s on %s does not match the source: sha256 %s, source %s; the '
                                'partial copy was removed'
                                % (part, dst.describe(), recv.get('actual'), recv.get('expected')), **base)
        raise TransferError('writing %s on %s failed: %s' % (part, dst.describe(), recv['error']), **base)

    # ------------------------------------------------------------------ direct
    def _direct(self, job):
        src, dst, part, base = job['src'], job['dst'], job['part'], job['base']
        offset, size, src_path = job['offset'], job['size'], job['src_path']
        args = self._args
        if src.kind != 'ssh' and not args['direct_source_address']:
            raise TransferError('transfer_mode=direct needs the source to be reachable over ssh from %s: host %s uses '
                                'a local connection; set direct_source_address' % (dst.describe(), src.name), **base)
        if src.become and src.become.get('password'):
            raise TransferError('transfer_mode=direct cannot send a become password to %s; use passwordless become '
                                'there or transfer_mode=relay' % src.describe(), **base)
        address = args['direct_source_address'] or src.address
        port = args['direct_source_port'] or src.port
        user = args['direct_source_user'] or src.user
        need = size - offset
        send_cmd = src.wrap(src.helper_command('send', {'path': src_path, 'offset': offset,
                                                        'sha1': job['sidecar'] is not None,
                                                        'chunk': self._block()}))
        options = ['-o', 'BatchMode=yes', '-o', 'Compression=no']
        if port:
            options += ['-p', str(port)]
        if user:
            options += ['-l', user]
        options += shlex.split(args['direct_ssh_args'] or '')
        ssh = ['ssh', '-n'] + options + [address, send_cmd]
        recv_cmd = dst.helper_command('recv', {'part': part, 'offset': offset, 'chunk': self._block(),
                                               'progress': min(args['progress_interval'], 2.0) or 2.0,
                                               'verify': args['verify'], 'length': need})
        # the reader's summary arrives on the inner ssh's stderr, which is ours; the writer's on stdout
        rest = ' '.join(shlex.quote(a) for a in options + [address, send_cmd])
        pipeline = 'ssh -n %s | %s' % (rest, recv_cmd)
        ciphers = src.stream_ciphers
        if ciphers and not _sets_ciphers(options):
            # the destination's ssh prefers these ciphers unless its configuration chooses some: the
            # same test as on the controller (`ssh -G` reports another list than ssh's built-in one,
            # or cannot tell)
            probe = ' '.join(shlex.quote(a) for a in ['ssh', '-G'] + options + [address])
            pipeline = ('c=$(%s </dev/null 2>/dev/null | sed -n "s/^ciphers //p"); '
                        'd=$(ssh -G -F /dev/null localhost </dev/null 2>/dev/null | sed -n "s/^ciphers //p"); '
                        'if [ -n "$c" ] && [ "$c" = "$d" ]; then set -- -o %s; else set --; fi; '
                        'ssh -n "$@" %s | %s' % (probe, shlex.quote('Ciphers=' + ciphers), rest, recv_cmd))
            display.vvv('model_transfer: direct mode: %s prefers Ciphers=%s unless its ssh configuration chooses '
                        'ciphers' % (dst.describe(), ciphers))
        proc = self._spawn(dst, pipeline, stream=True)
        prefix = dst.stdin_prefix()
        try:
            if prefix:
                proc.stdin.write(prefix)
            proc.stdin.close()
            proc.stdin = None
            state = {'t0': time.time(), 'last': time.time(), 'label': '%s:%s => %s (direct)' % (
                src.name, posixpath.basename(src_path), dst.name)}
            err_chunks = []
            moved = 0
            fd = proc.stderr.fileno()
            pending = b''
            mark = to_bytes(PROGRESS_MARK)
            while True:
                self._check_parent()
                ready, _w, _x = select.select([fd], [], [], 1.0)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                block = os.read(fd, 65536)
                if not block:
                    break
                err_chunks.append(block)
                pending += block
                lines = pending.split(b'\n')
                pending = lines.pop()
                for line in lines:
                    if line.startswith(mark):
                        try:
                            moved = int(line[len(mark):])
                        except ValueError:
                            continue
                        self._progress(state, moved, need)
            d_out = proc.stdout.read()
            proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        d_err = b''.join(err_chunks)
        recv = _parse_marked(d_out)
        send = _parse_marked(d_err)
        if recv is not None and recv.get('error'):
            self._receiver_error(dst, recv, job)
        if recv is None:
            raise TransferError(self._failure_text(dst, 'receiving into %s' % part, proc.returncode, d_err, d_out) +
                                '; the partial copy (if any) is kept for resuming', **base)
        moved = recv.get('written', 0)
        if send is None:
            kept = 'the partial copy %s is kept for resuming' % part
            if not moved and not offset:
                self._call(dst, 'rm', {'path': part})
                kept = 'nothing was written'
            raise TransferError('transfer_mode=direct: %s could not read %s from %s at %s (%s): %s; %s' % (
                dst.describe(), src_path, src.name, address, ' '.join(shlex.quote(a) for a in ssh[:-1]),
                _noise(d_err) or 'no output', kept), **base)
        if time.time() - state['t0'] >= args['progress_interval'] > 0:
            self._progress(state, moved, need, force=True)
        return send, recv, moved
