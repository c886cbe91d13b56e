# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fate.flow.model_transfer: the helper session that runs on each host (inspection, hashes and the data
over one connection), driven here through pipes as the controller drives it over ssh."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys

from ansible_collections.fate.flow.plugins.action.model_transfer import HELPER, MARK

MARKER = 'FFXFER-START-TESTMARKER'


def session(stdin, timeout=60, prelude=''):
    """Run one helper session with `stdin` (bytes); returns (marked results on stdout, stdout, stderr, rc).

    prelude: Python run before the helper (to make a system call fail)."""
    args = base64.b64encode(json.dumps({'marker': MARKER}).encode('utf-8')).decode('ascii')
    proc = subprocess.run([sys.executable, '-c', prelude + HELPER, 'session', args], input=stdin,
                          capture_output=True, timeout=timeout, check=False)
    return marked(proc.stdout), proc.stdout, proc.stderr, proc.returncode


def marked(data):
    return [json.loads(line[len(MARK):]) for line in data.decode('utf-8', 'replace').splitlines()
            if line.startswith(MARK)]


def command(op, **args):
    return json.dumps({'op': op, 'args': dict(args, chunk=4096)}).encode('utf-8') + b'\n'


def start(prefix=b''):
    return prefix + MARKER.encode('ascii') + b'\n'


def test_a_password_sudo_did_not_ask_for_is_skipped_and_ops_answer_in_order(tmp_path):
    archive = tmp_path / 'guest#99#model 1.zip'
    archive.write_bytes(os.urandom(10000))
    dest = str(tmp_path / 'in #2') + '/'
    results, dummy, err, rc = session(start(b'secret password\n') +
                                      command('src_probe', path=str(archive), sidecar=True) +
                                      command('dst_probe', dest=dest, basename=archive.name) +
                                      command('hash', path=str(archive)) +
                                      command('hash', path=str(archive), length=100))
    assert rc == 0, err
    probe, dst, whole, prefix = results
    assert probe['file']['size'] == 10000 and probe['readable'] and 'sidecar' not in probe
    assert dst['final'] == os.path.join(dest, archive.name) and not dst['dir_stat']['exists']
    assert whole['sha256'] == hashlib.sha256(archive.read_bytes()).hexdigest() and whole['bytes'] == 10000
    assert prefix['sha256'] == hashlib.sha256(archive.read_bytes()[:100]).hexdigest()
    assert b'secret' not in err


def test_nothing_runs_before_the_marker_and_the_session_ends_with_its_input(tmp_path):
    results, out, err, rc = session(command('mkdir', path=str(tmp_path / 'made')))
    assert (rc, results, out) == (0, [], b''), err
    assert not (tmp_path / 'made').exists()
    results, dummy, err, rc = session(start() + command('mkdir', path=str(tmp_path / 'made')) + b'{"op": "rm", ')
    assert rc == 0 and results == [{'created': True}], err


def test_a_failing_op_answers_with_an_error_and_the_session_goes_on(tmp_path):
    results, dummy, err, rc = session(start() + command('hash', path=str(tmp_path / 'missing.zip')) +
                                      command('rm', path=str(tmp_path / 'missing.zip')))
    assert rc == 0, err
    assert 'missing.zip' in results[0]['error'] and results[1] == {'removed': False}


def test_send_after_a_probe_streams_exactly_the_file_and_sums_up_on_stderr(tmp_path):
    archive = tmp_path / 'a.zip'
    data = os.urandom(300000)
    archive.write_bytes(data)
    results, out, err, rc = session(start() + command('src_probe', path=str(archive)) +
                                    command('send', path=str(archive), offset=1000))
    assert rc == 0, err
    assert results[0]['file']['size'] == 300000
    stream = out.split(b'\n', 2)[2]  # after "\n" MARK probe "\n"
    assert stream == data[1000:]
    summary = marked(err)[-1]
    assert summary == {'sha256': hashlib.sha256(data).hexdigest(), 'sha1': None, 'bytes': 300000, 'sent': 299000}


def test_recv_takes_the_data_right_after_its_command_and_commits_on_the_trailer(tmp_path):
    folder = tmp_path / 'in #1'
    folder.mkdir()
    final = folder / 'model.zip'
    part = folder / '.model.zip.part'
    data = os.urandom(70001)
    digest = hashlib.sha256(data).hexdigest()
    trailer = {'action': 'commit', 'sha256': digest, 'final': str(final), 'uid': -1, 'gid': -1, 'mode': '0640'}
    # command, data and trailer in one write: the session must hand what it read past the command to recv
    results, dummy, err, rc = session(start() + command('dst_probe', dest=str(final), basename='x') +
                                      command('recv', part=str(part), offset=0, length=len(data), trailer=True,
                                              verify=True) + data + json.dumps(trailer).encode('utf-8') + b'\n')
    assert rc == 0, err
    assert results[0]['final'] == str(final)
    assert results[1]['committed'] and results[1]['sha256'] == digest and results[1]['written'] == len(data)
    assert final.read_bytes() == data and not part.exists()
    assert stat.S_IMODE(os.stat(str(final)).st_mode) == 0o640


def test_recv_removes_what_does_not_match_the_source(tmp_path):
    final = tmp_path / 'model.zip'
    part = tmp_path / '.model.zip.part'
    data = os.urandom(5000)
    trailer = {'action': 'commit', 'sha256': '0' * 64, 'final': str(final), 'mode': '0600'}
    results, dummy, err, rc = session(start() + command('recv', part=str(part), offset=0, length=len(data),
                                                        trailer=True) + data + json.dumps(trailer).encode() + b'\n')
    assert rc == 0, err
    assert results[0]['error'] == 'mismatch' and results[0]['removed']
    assert not final.exists() and not part.exists()


def test_a_write_back_error_met_while_flushing_in_the_background_fails_the_transfer(tmp_path):
    # the destination flushes the .part every 16 MiB in a thread; an error there (reported only once
    # by the kernel) must fail the transfer like an error of the final fsync, and commit nothing
    final = tmp_path / 'model.zip'
    part = tmp_path / '.model.zip.part'
    data = os.urandom(17 * 1024 * 1024)
    trailer = {'action': 'commit', 'sha256': hashlib.sha256(data).hexdigest(), 'final': str(final), 'mode': '0600'}
    prelude = ('import errno, os\n'
               'def _full(fd):\n'
               '    raise OSError(errno.ENOSPC, "No space left on device")\n'
               'os.fdatasync = _full\n')
    results, dummy, err, rc = session(start() + command('recv', part=str(part), offset=0, length=len(data),
                                                        trailer=True) + data + json.dumps(trailer).encode() + b'\n',
                                      prelude=prelude)
    assert rc == 0, err
    assert results[0]['enospc'] is True and results[0]['written'] == len(data), results
    assert 'No space left' in results[0]['error']
    assert not final.exists()
