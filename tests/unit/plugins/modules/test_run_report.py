# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fate.flow.run_report: both report files in one module run, atomically, not world-readable."""

from __future__ import annotations

import json
import os
import stat
import pytest
import yaml

from ansible_collections.fate.flow.plugins.modules import run_report
from ansible_collections.fate.flow.tests.unit.plugins.module_runner import run_main

DATA = {'operation': 'pipeline', 'bytes_moved': 42, 'parties': [{'archive_name': 'guest#99#m_v.zip'}]}


def run(args, check_mode=False):
    return run_main(run_report, args, check_mode)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_docs_parse_and_list_every_option():
    doc = yaml.safe_load(run_report.DOCUMENTATION)
    yaml.safe_load(run_report.EXAMPLES)
    yaml.safe_load(run_report.RETURN)
    assert sorted(doc['options']) == ['data', 'dir', 'dir_mode', 'mode', 'name', 'text']


def test_writes_both_files_private_then_a_rerun_changes_nothing(tmp_path):
    directory = str(tmp_path / 'reports #1')
    args = dict(dir=directory, name='fate_flow_v #1', data=DATA, text='report text\n')
    result = run(args)
    assert result['changed'] is True and not result.get('failed'), result
    assert result['json_path'] == os.path.join(directory, 'fate_flow_v #1.json')
    with open(result['json_path']) as handle:
        assert json.load(handle) == DATA
    with open(result['text_path']) as handle:
        assert handle.read() == 'report text\n'
    assert _mode(directory) == 0o700
    assert _mode(result['json_path']) == _mode(result['text_path']) == 0o600
    assert sorted(os.listdir(directory)) == ['fate_flow_v #1.json', 'fate_flow_v #1.txt']   # no temporary left
    assert run(args)['changed'] is False


def test_check_mode_writes_nothing(tmp_path):
    directory = str(tmp_path / 'reports')
    result = run(dict(dir=directory, name='r', data=DATA, text='t'), check_mode=True)
    assert result['changed'] is True and not os.path.exists(directory)


def test_a_changed_report_replaces_the_old_one(tmp_path):
    args = dict(dir=str(tmp_path), name='r', data=DATA)
    run(args)
    result = run(dict(args, data=dict(DATA, bytes_moved=0)))
    assert result['changed'] is True and 'text_path' not in result
    with open(result['json_path']) as handle:
        assert json.load(handle)['bytes_moved'] == 0


@pytest.mark.parametrize('name', ['../escape', 'a/b', '..', ''])
def test_names_that_leave_the_directory_are_refused(tmp_path, name):
    result = run(dict(dir=str(tmp_path), name=name, data=DATA))
    assert result['failed'] and 'without "/"' in result['msg']
    assert os.listdir(str(tmp_path)) == []


def test_an_unwritable_directory_says_what_to_do(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    result = run(dict(dir=str(blocker / 'reports'), name='r', data=DATA))
    assert result['failed'] and 'cannot write the report in' in result['msg'] and 'fate_report_dir' in result['msg']
    assert blocker.read_text() == 'not a directory'


def test_a_report_left_readable_gets_its_mode_back(tmp_path):
    args = dict(dir=str(tmp_path), name='r', data=DATA, text='t')
    first = run(args)
    os.chmod(first['text_path'], 0o644)
    assert run(args, check_mode=True)['changed'] is True and _mode(first['text_path']) == 0o644
    assert run(args)['changed'] is True and _mode(first['text_path']) == 0o600
    assert run(args)['changed'] is False
