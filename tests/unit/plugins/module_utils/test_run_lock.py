# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The run lock's file logic: atomic creation, re-entry, stale takeover, release, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.fate.flow.plugins.module_utils import _run_lock as rl


def holder(run_id, started=None, controller='ctl', pid=4242):
    return rl.new_holder(run_id, controller, pid, 77, started=started, host='party-host')


@pytest.fixture
def lock(tmp_path):
    directory = tmp_path / 'fate home #1'
    directory.mkdir()
    return str(directory / rl.DEFAULT_NAME)


def test_acquire_creates_a_private_complete_lock_and_leaves_no_temp_file(lock):
    assert rl.acquire_once(lock, holder('run-a'), 3600) == ('acquired', None)
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    with open(lock) as handle:
        data = json.load(handle)
    assert (data['run_id'], data['controller'], data['controller_pid'], data['controller_pid_start']) == \
        ('run-a', 'ctl', 4242, 77)
    assert data['host'] == 'party-host' and data['started_at'].endswith('Z')
    assert os.listdir(os.path.dirname(lock)) == [rl.DEFAULT_NAME]


def test_same_run_reenters_and_another_run_is_refused(lock):
    rl.acquire_once(lock, holder('run-a'), 3600)
    before = open(lock, 'rb').read()
    outcome, current = rl.acquire_once(lock, holder('run-a'), 3600)
    assert outcome == 'mine' and current['run_id'] == 'run-a'
    outcome, current = rl.acquire_once(lock, holder('run-b'), 3600)
    assert outcome == 'held' and current['run_id'] == 'run-a'
    assert open(lock, 'rb').read() == before


def test_lock_older_than_max_age_is_taken_over(lock):
    rl.acquire_once(lock, holder('old', started=rl.now() - 7200), 3600)
    outcome, stale = rl.acquire_once(lock, holder('new'), 3600)
    assert outcome == 'taken_over' and stale['run_id'] == 'old'
    assert rl.read(lock)['run_id'] == 'new'


def test_max_age_zero_never_takes_over_by_age(lock):
    rl.acquire_once(lock, holder('old', started=rl.now() - 10 ** 6), 0)
    assert rl.acquire_once(lock, holder('new'), 0)[0] == 'held'


def test_named_dead_run_is_taken_over_but_no_other(lock):
    rl.acquire_once(lock, holder('dead'), 3600)
    assert rl.acquire_once(lock, holder('new'), 3600, break_run_id='someone-else')[0] == 'held'
    outcome, stale = rl.acquire_once(lock, holder('new'), 3600, break_run_id='dead')
    assert outcome == 'taken_over' and stale['run_id'] == 'dead'


def test_takeover_does_not_remove_a_lock_that_changed_meanwhile(lock):
    rl.acquire_once(lock, holder('dead'), 3600)
    stale = rl.read(lock)
    rl.release(lock, 'dead')
    rl.acquire_once(lock, holder('quick'), 3600)      # another run took the free lock first
    assert rl.take_over(lock, stale, holder('late')) is False
    assert rl.read(lock)['run_id'] == 'quick'


def test_check_mode_reports_without_creating_or_replacing(lock):
    assert rl.acquire_once(lock, holder('a'), 3600, check=True) == ('would_acquire', None)
    assert not os.path.exists(lock)
    rl.acquire_once(lock, holder('old', started=rl.now() - 7200), 3600)
    before = open(lock, 'rb').read()
    assert rl.acquire_once(lock, holder('a'), 3600, check=True)[0] == 'would_take_over'
    assert open(lock, 'rb').read() == before


def test_release_only_by_the_holder(lock):
    rl.acquire_once(lock, holder('a'), 3600)
    removed, current = rl.release(lock, 'b')
    assert removed is False and current['run_id'] == 'a' and os.path.exists(lock)
    removed, current = rl.release(lock, 'a')
    assert removed is True and not os.path.exists(lock)
    assert rl.release(lock, 'a') == (False, None)


def test_unreadable_lock_counts_as_held_until_max_age(lock):
    with open(lock, 'w') as handle:
        handle.write('not json')
    outcome, current = rl.acquire_once(lock, holder('a'), 3600)
    assert outcome == 'held' and current['invalid'] is True
    assert 'unreadable lock file' in rl.describe(current)
    os.utime(lock, (rl.now() - 7200, rl.now() - 7200))
    assert rl.acquire_once(lock, holder('a'), 3600)[0] == 'taken_over'


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(rl.LockError, match='lock directory .*missing.* does not exist'):
        rl.acquire_once(str(tmp_path / 'missing' / 'x.lock'), holder('a'), 3600)


def test_process_liveness():
    me = os.getpid()
    assert rl.process_alive(me, rl.process_start(me))
    assert not rl.process_alive(me, (rl.process_start(me) or 0) + 1)   # same pid, other process
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    assert not rl.process_alive(child.pid)
    assert not rl.process_alive(None) and not rl.process_alive(0)


def _contend(path, run_id, barrier, queue):
    barrier.wait()
    queue.put((run_id, rl.acquire_once(path, holder(run_id), 3600)[0]))


def test_concurrent_processes_exactly_one_wins(lock):
    ctx = multiprocessing.get_context('fork')
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(lock, 'run-%d' % i, barrier, queue)) for i in range(8)]
    for proc in procs:
        proc.start()
    outcomes = dict(queue.get(timeout=30) for _proc in procs)
    for proc in procs:
        proc.join(30)
    winners = [run for run, outcome in outcomes.items() if outcome == 'acquired']
    assert len(winners) == 1 and sorted(set(outcomes.values())) == ['acquired', 'held']
    assert rl.read(lock)['run_id'] == winners[0]


def test_concurrent_takeovers_of_one_stale_lock_one_wins(lock):
    rl.acquire_once(lock, holder('old', started=rl.now() - 7200), 3600)
    ctx = multiprocessing.get_context('fork')
    barrier, queue = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(lock, 'run-%d' % i, barrier, queue)) for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = dict(queue.get(timeout=30) for _proc in procs)
    for proc in procs:
        proc.join(30)
    winners = [run for run, outcome in outcomes.items() if outcome in ('acquired', 'taken_over')]
    assert len(winners) == 1, outcomes
    assert rl.read(lock)['run_id'] == winners[0]


def test_link_unsupported_falls_back_to_o_excl(lock, monkeypatch):
    def no_link(src, dst):
        raise OSError(1, 'Operation not permitted')
    monkeypatch.setattr(rl.os, 'link', no_link)
    assert rl.acquire_once(lock, holder('a'), 3600)[0] == 'acquired'
    assert rl.read(lock)['run_id'] == 'a'
    assert rl.acquire_once(lock, holder('b'), 3600)[0] == 'held'
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
