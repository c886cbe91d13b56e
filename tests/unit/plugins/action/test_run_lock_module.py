# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fate.flow.run_lock: the module on the party host and the action plugin that waits on the controller."""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import pytest
import yaml

from ansible_collections.fate.flow.plugins.action import run_lock as action
from ansible_collections.fate.flow.plugins.module_utils import _run_lock as rl
from ansible_collections.fate.flow.plugins.modules import run_lock
from ansible_collections.fate.flow.tests.unit.plugins.module_runner import run_main


def run_module(args, check_mode=False):
    return run_main(run_lock, args, check_mode)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'fate_flow_run.lock')


def test_docs_parse_and_list_every_option():
    doc = yaml.safe_load(run_lock.DOCUMENTATION)
    yaml.safe_load(run_lock.EXAMPLES)
    yaml.safe_load(run_lock.RETURN)
    assert sorted(doc['options']) == sorted(['state', 'path', 'run_id', 'wait_timeout', 'max_age', 'controller',
                                             'controller_pid', 'controller_pid_start', 'break_run_id'])


def test_acquire_rerun_release_rerelease(path):
    args = {'path': path, 'run_id': 'r1', 'controller': 'ctl', 'controller_pid': 10}
    first = run_module(args)
    assert (first['changed'], first['outcome'], first['acquired']) == (True, 'acquired', True)
    assert first['holder']['run_id'] == 'r1' and os.path.exists(path)
    again = run_module(args)
    assert (again['changed'], again['outcome'], again['acquired']) == (False, 'already_held', True)
    released = run_module(dict(args, state='released'))
    assert (released['changed'], released['outcome']) == (True, 'released') and not os.path.exists(path)
    assert run_module(dict(args, state='released'))['changed'] is False


def test_other_run_gets_held_and_nothing_changes(path):
    run_module({'path': path, 'run_id': 'r1'})
    before = open(path, 'rb').read()
    other = run_module({'path': path, 'run_id': 'r2'})
    assert (other['changed'], other['outcome'], other['acquired']) == (False, 'held', False)
    assert other['holder']['run_id'] == 'r1'
    assert run_module({'path': path, 'run_id': 'r2', 'state': 'released'})['outcome'] == 'not_held'
    assert open(path, 'rb').read() == before


def test_check_mode_creates_and_removes_nothing(path):
    result = run_module({'path': path, 'run_id': 'r1'}, check_mode=True)
    assert (result['changed'], result['outcome']) == (True, 'would_acquire') and not os.path.exists(path)
    run_module({'path': path, 'run_id': 'r1'})
    result = run_module({'path': path, 'run_id': 'r1', 'state': 'released'}, check_mode=True)
    assert (result['changed'], result['outcome']) == (True, 'would_release') and os.path.exists(path)


def test_missing_directory_and_relative_path_fail_clearly(tmp_path):
    result = run_module({'path': str(tmp_path / 'nope' / 'x.lock'), 'run_id': 'r1'})
    assert result['failed'] and 'does not exist' in result['msg'] and 'nope' in result['msg']
    result = run_module({'path': 'relative.lock', 'run_id': 'r1'})
    assert result['failed'] and 'absolute' in result['msg']


# ------------------------------------------------------------------------------------------ action plugin

class Task(object):
    def __init__(self, args, check_mode=False, delegate_to=None):
        self.args, self.check_mode, self.delegate_to = args, check_mode, delegate_to
        self.async_val, self.action = 0, 'fate.flow.run_lock'


def make_action(args, check_mode=False):
    connection = mock.MagicMock()
    connection._shell.tmpdir = 'x'
    play_context = mock.MagicMock(check_mode=check_mode)
    plugin = action.ActionModule(Task(args, check_mode, 'party99'), connection, play_context, None, None, None)
    calls = []

    def execute(module_name, module_args, task_vars):
        calls.append(dict(module_args))
        return run_module(module_args, check_mode=check_mode)

    plugin._execute_module = execute
    return plugin, calls


TASK_VARS = {'inventory_hostname': 'party9999', 'hostvars': {'party99': {'fate_party_id': '99'}}}


def test_action_fills_in_the_controller_and_a_run_id(path):
    plugin, calls = make_action({'path': path})
    result = plugin.run(task_vars=TASK_VARS)
    host, pid, start = action.controller_identity()
    assert result['outcome'] == 'acquired'
    assert result['run_id'] == '%s:%d:%s' % (host, pid, start or 0)
    assert (calls[0]['controller'], calls[0]['controller_pid']) == (host, pid)
    assert rl.read(path)['controller_pid'] == os.getppid()


def test_action_refuses_at_once_with_a_message_that_says_what_to_do(path):
    rl.acquire_once(path, rl.new_holder('busy-run', 'other-controller', 1), 3600)
    plugin, calls = make_action({'path': path, 'run_id': 'me'})
    result = plugin.run(task_vars=TASK_VARS)
    assert result['failed'] and len(calls) == 1
    msg = result['msg']
    for text in ('party99 (party 99)', 'busy-run', 'other-controller', path, 'did not wait', 'changed nothing',
                 'run again', 'remove'):
        assert text in msg, msg
    assert rl.read(path)['run_id'] == 'busy-run'
    # the command that gives a finished run's lock back names that run, and only that run can release it
    assert "-e fate_run_lock_state=released -e 'fate_run_id=busy-run'" in msg, msg
    released = make_action({'path': path, 'run_id': 'busy-run', 'state': 'released'})[0].run(task_vars=TASK_VARS)
    assert released['outcome'] == 'released' and rl.read(path) is None


def test_action_waits_until_the_other_run_releases(path, monkeypatch):
    rl.acquire_once(path, rl.new_holder('busy-run', 'other-controller', 1), 3600)
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            rl.release(path, 'busy-run')
    monkeypatch.setattr(action.time, 'sleep', fake_sleep)
    plugin, calls = make_action({'path': path, 'run_id': 'me', 'wait_timeout': 600})
    result = plugin.run(task_vars=TASK_VARS)
    assert not result.get('failed') and result['outcome'] == 'acquired' and len(calls) == 3
    assert rl.read(path)['run_id'] == 'me'


def test_action_gives_up_after_wait_timeout(path, monkeypatch):
    rl.acquire_once(path, rl.new_holder('busy-run', 'other-controller', 1), 3600)
    clock = [1000.0]
    monkeypatch.setattr(action.time, 'monotonic', lambda: clock[0])
    monkeypatch.setattr(action.time, 'sleep', lambda s: clock.__setitem__(0, clock[0] + s))
    plugin, calls = make_action({'path': path, 'run_id': 'me', 'wait_timeout': 7})
    result = plugin.run(task_vars=TASK_VARS)
    assert result['failed'] and 'waited 7 s' in result['msg'] and len(calls) == 5


def test_action_takes_over_from_a_dead_ansible_playbook_of_this_controller(path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    host = action.controller_identity()[0]
    rl.acquire_once(path, rl.new_holder('dead-run', host, dead.pid), 3600)
    plugin, calls = make_action({'path': path, 'run_id': 'me'})
    result = plugin.run(task_vars=TASK_VARS)
    assert result['outcome'] == 'taken_over' and result['stale_holder']['run_id'] == 'dead-run'
    assert calls[-1]['break_run_id'] == 'dead-run'
    assert any('took over the stale run lock' in w for w in result['warnings'])
    assert rl.read(path)['run_id'] == 'me'


def test_action_does_not_take_over_from_a_live_process_or_another_controller(path):
    host = action.controller_identity()[0]
    rl.acquire_once(path, rl.new_holder('live-run', host, os.getpid(), rl.process_start(os.getpid())), 3600)
    plugin, calls = make_action({'path': path, 'run_id': 'me'})
    assert plugin.run(task_vars=TASK_VARS)['failed'] and 'break_run_id' not in calls[-1]
    rl.release(path, 'live-run')
    rl.acquire_once(path, rl.new_holder('far-run', 'elsewhere', 999999999), 3600)
    plugin, calls = make_action({'path': path, 'run_id': 'me'})
    result = plugin.run(task_vars=TASK_VARS)
    assert result['failed'] and 'cannot check its process' in result['msg']


def test_action_check_mode_warns_and_does_not_wait_or_fail(path, monkeypatch):
    rl.acquire_once(path, rl.new_holder('busy-run', 'other-controller', 1), 3600)
    monkeypatch.setattr(action.time, 'sleep', lambda s: pytest.fail('check mode must not wait'))
    plugin, calls = make_action({'path': path, 'run_id': 'me', 'wait_timeout': 600}, check_mode=True)
    result = plugin.run(task_vars=TASK_VARS)
    assert not result.get('failed') and result['acquired'] is False and len(calls) == 1
    assert any('busy-run' in w for w in result['warnings'])
