# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A run lock: one file that says which run is working on a host (fate.flow.run_lock).

Nothing here knows about FATE. The lock file is JSON:

    {"run_id": ..., "controller": ..., "controller_pid": ..., "controller_pid_start": ...,
     "host": ..., "started": <epoch seconds>, "started_at": "<ISO 8601 UTC>", "format": 1}

* It is created atomically: the complete content is written to a private temporary file (O_EXCL, mode 0600),
  which is then hard-linked to the lock path; link() fails with EEXIST when the lock exists, like O_EXCL, and a
  reader never sees a half-written lock. File systems without hard links fall back to O_CREAT | O_EXCL.
* Taking over a stale lock and releasing one happen under flock() on the lock's directory (when the file system
  supports it), so a takeover never removes a lock that another run has just created.
* A lock is stale when it is older than max_age seconds, or when the caller names its run id (the controller
  found the recorded ansible-playbook process gone); see holder_state().
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time

LOCK_FORMAT = 1
DEFAULT_NAME = 'fate_flow_run.lock'
DEFAULT_MAX_AGE = 86400


class LockError(Exception):
    """The lock cannot be read, created or removed (permissions, missing directory, ...)."""


def now():
    return time.time()


def iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def process_start(pid):
    """Start time of a local process (clock ticks since boot, from /proc), or None where /proc cannot tell."""
    try:
        with open('/proc/%d/stat' % int(pid), 'rb') as handle:
            data = handle.read().decode('ascii', 'replace')
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
    fields = data[data.rfind(')') + 2:].split()
    try:
        return int(fields[19])      # field 22 of proc(5): starttime
    except (IndexError, ValueError):
        return None


def process_alive(pid, start=None):
    """Whether local process `pid` still runs (and, when `start` is known, is the same process, not a reuse of
    its pid). A zombie counts as gone."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        # EPERM: it exists, owned by someone else.
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            data = handle.read().decode('ascii', 'replace')
        if data[data.rfind(')') + 2:].split()[0] == 'Z':
            return False
    except (OSError, IndexError):
        pass
    if start is not None:
        current = process_start(pid)
        if current is not None and current != int(start):
            return False
    return True


def new_holder(run_id, controller, controller_pid, controller_pid_start=None, started=None, host=None):
    started = now() if started is None else started
    return {'format': LOCK_FORMAT, 'run_id': str(run_id), 'controller': str(controller),
            'controller_pid': int(controller_pid) if controller_pid is not None else None,
            'controller_pid_start': controller_pid_start, 'host': host or socket.gethostname(),
            'started': started, 'started_at': iso(started)}


def read(path):
    """The holder recorded in the lock file, None when there is no lock. A file that is not a lock written by
    this code gives {'invalid': True, 'started': <its mtime>} (it still counts as held, until max_age)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise LockError('cannot read the lock %s: %s' % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        data = b''
        while len(data) < 65536:
            block = os.read(fd, 65536)
            if not block:
                break
            data += block
    finally:
        os.close(fd)
    try:
        holder = json.loads(data.decode('utf-8'))
        if not isinstance(holder, dict) or not holder.get('run_id'):
            raise ValueError('no run_id')
        float(holder.get('started'))
    except (ValueError, TypeError, UnicodeDecodeError):
        return {'invalid': True, 'run_id': None, 'started': st.st_mtime, 'started_at': iso(st.st_mtime)}
    return holder


def age(holder, at=None):
    return max(0.0, (now() if at is None else at) - float(holder.get('started') or 0))


def holder_state(holder, run_id, max_age, break_run_id=None, at=None):
    """'free', 'mine', 'stale_age', 'stale_process' (the controller named its run id) or 'held'."""
    if holder is None:
        return 'free'
    if holder.get('run_id') is not None and holder.get('run_id') == run_id:
        return 'mine'
    if max_age is not None and max_age > 0 and age(holder, at) > max_age:
        return 'stale_age'
    if break_run_id and holder.get('run_id') == break_run_id:
        return 'stale_process'
    return 'held'


class _DirLock(object):
    """flock() on the lock's directory for the critical sections (takeover, release). A file system without
    flock on directories gives no guard (the operations stay correct for the common case)."""

    def __init__(self, directory):
        self.directory = directory
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
            self.fd = os.open(self.directory, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)       # closing releases the flock
            self.fd = None
        return False


def _check_dir(path):
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise LockError('the lock directory %s does not exist' % directory)
    return directory


def create(path, holder):
    """Create the lock holding `holder`; True when created, False when a lock exists already."""
    directory = _check_dir(path)
    data = json.dumps(holder, sort_keys=True).encode('utf-8') + b'\n'
    tmp = os.path.join(directory, '.%s.%d.%d.tmp' % (os.path.basename(path), os.getpid(), int(now() * 1e6)))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    except OSError as exc:
        raise LockError('cannot write in the lock directory %s: %s' % (directory, exc.strerror))
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise LockError('cannot create the lock %s: %s' % (path, exc.strerror))
            return _create_excl(path, data)
    except OSError as exc:
        raise LockError('cannot create the lock %s: %s' % (path, exc.strerror))
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    _fsync_dir(directory)
    return True


def _create_excl(path, data):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _same(a, b):
    keys = ('run_id', 'started', 'controller', 'controller_pid')
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in keys)


def take_over(path, stale, holder):
    """Replace the lock if it still holds `stale` (as read before); True when this run holds it now."""
    directory = _check_dir(path)
    with _DirLock(directory):
        current = read(path)
        if current is not None and not _same(current, stale):
            return False
        if current is not None:
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise LockError('cannot remove the stale lock %s: %s' % (path, exc.strerror))
        return create(path, holder)


def release(path, run_id):
    """Remove the lock if `run_id` holds it. Returns (removed, holder found)."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        return False, None
    with _DirLock(directory):
        current = read(path)
        if current is None or current.get('run_id') != run_id:
            return False, current
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False, None
            raise LockError('cannot remove the lock %s: %s' % (path, exc.strerror))
    _fsync_dir(directory)
    return True, current


def acquire_once(path, holder, max_age, break_run_id=None, check=False):
    """One attempt to take the lock for holder['run_id'].

    Returns (outcome, current holder) where outcome is 'acquired', 'mine' (this run holds it already),
    'taken_over' (a stale lock was replaced; the stale holder is returned), 'held' (another run holds it) or, in
    check mode, 'would_acquire' / 'would_take_over'.
    """
    _check_dir(path)
    for _attempt in range(3):
        current = read(path)
        state = holder_state(current, holder['run_id'], max_age, break_run_id)
        if state == 'mine':
            return 'mine', current
        if state == 'held':
            return 'held', current
        if state == 'free':
            if check:
                return 'would_acquire', None
            if create(path, holder):
                return 'acquired', None
            continue            # someone was quicker: look again
        if check:
            return 'would_take_over', current
        if take_over(path, current, holder):
            return 'taken_over', current
    return 'held', read(path)


def describe(holder, at=None):
    """'run R (controller C, pid P), started T, N s ago' for messages."""
    if holder is None:
        return 'nobody'
    if holder.get('invalid'):
        return 'an unreadable lock file written %s (%d s ago)' % (holder.get('started_at'), age(holder, at))
    return 'run %s (controller %s, ansible-playbook pid %s), started %s, %d s ago' % (
        holder.get('run_id'), holder.get('controller'), holder.get('controller_pid'), holder.get('started_at'),
        age(holder, at))
