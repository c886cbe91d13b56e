# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

"""fate.flow.serving_link: check mode, diff, backup, atomic write with owner and mode, idempotency."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fate.flow.plugins.modules import serving_link

SERVICE_CONF = """\
use_registry: false
fateflow:
  # must be reachable by FATE-Serving
  host: 192.168.0.2
  http_port: 9380
zookeeper:
  hosts:
    - 127.0.0.1:2181
  use_acl: false
  user: fate
  password: OldSecret9
# servings for load and bind
servings:
  hosts:
    - 127.0.0.1:8000
"""


class _Exit(Exception):
    pass


def run(monkeypatch, args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    warnings = []

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        kwargs['warnings'] = warnings
        raise _Exit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg, warnings=warnings)
        raise _Exit(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warnings.append(msg))
    with patch_module_args(args):
        with pytest.raises(_Exit) as info:
            serving_link.main()
    return info.value.args[0]


@pytest.fixture
def home(tmp_path):
    (tmp_path / 'conf').mkdir()
    conf = tmp_path / 'conf' / 'service_conf.yaml'
    conf.write_text(SERVICE_CONF)
    os.chmod(str(conf), 0o640)
    (tmp_path / 'fate.env').write_text('FATE=1.11.4\nFATEFlow=1.11.2\n')
    return tmp_path


ZK = {'hosts': ['10.0.0.1:2181'], 'use_acl': True, 'user': 'fate', 'password': 'NewSecret7'}


def test_check_mode_writes_nothing(monkeypatch, home):
    conf = home / 'conf' / 'service_conf.yaml'
    before = conf.read_bytes()
    result = run(monkeypatch, {'fate_home': str(home), 'zookeeper': ZK}, check_mode=True, diff=True)
    assert result['changed'] is True and result['restart_required'] is True
    assert result['backup_files'] == [] and 'backup_file' not in result
    assert conf.read_bytes() == before
    assert sorted(os.listdir(str(home / 'conf'))) == ['service_conf.yaml']
    assert 'OldSecret9' not in json.dumps(result['diff'])


def test_zookeeper_mode_then_idempotent(monkeypatch, home):
    conf = home / 'conf' / 'service_conf.yaml'
    result = run(monkeypatch, {'fate_home': str(home), 'zookeeper': ZK}, diff=True)
    assert result['changed'] is True and result['mode'] == 'zookeeper'
    assert result['layout'] == 'service_conf' and result['fate_version'] == '1.11.4'
    assert result['config_files'] == [str(conf)] and result['changed_files'] == [str(conf)]
    assert result['changed_keys'][str(conf)] == ['use_registry', 'zookeeper.hosts', 'zookeeper.use_acl',
                                                 'zookeeper.password']
    backup = result['backup_file']
    assert result['backup_files'] == [{'src': backup, 'dest': str(conf)}]
    with open(backup) as handle:
        assert handle.read() == SERVICE_CONF
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(str(conf)).st_mode) == 0o640
    data = yaml.safe_load(conf.read_text())
    assert data['use_registry'] is True and data['zookeeper']['password'] == 'NewSecret7'
    assert '# must be reachable by FATE-Serving\n' in conf.read_text()
    assert not [name for name in os.listdir(str(home / 'conf')) if name.startswith('.')]   # no temp file left
    again = run(monkeypatch, {'fate_home': str(home), 'zookeeper': ZK}, diff=True)
    assert again['changed'] is False and again['restart_required'] is False and again['backup_files'] == []
    assert 'diff' not in again


def test_servings_mode_without_backup(monkeypatch, home):
    conf = home / 'conf' / 'service_conf.yaml'
    result = run(monkeypatch, {'fate_home': str(home), 'servings': ['10.0.0.5:8000'], 'backup': False})
    assert result['changed'] is True and result['mode'] == 'servings' and result['backup_files'] == []
    assert result['servings'] == ['10.0.0.5:8000']
    assert conf.read_text() == SERVICE_CONF.replace('    - 127.0.0.1:8000', '    - 10.0.0.5:8000')
    assert sorted(os.listdir(str(home / 'conf'))) == ['service_conf.yaml']


def test_invalid_yaml_is_refused_untouched(monkeypatch, home):
    conf = home / 'conf' / 'service_conf.yaml'
    conf.write_text('servings:\n  hosts: [a\n')
    result = run(monkeypatch, {'fate_home': str(home), 'servings': ['10.0.0.5:8000']})
    assert result['failed'] and 'not valid YAML' in result['msg']
    assert conf.read_text() == 'servings:\n  hosts: [a\n'


@pytest.mark.parametrize('args, message', [
    ({'servings': ['a:1'], 'zookeeper': ZK}, 'mutually exclusive'),
    ({}, 'one of the following is required'),
    ({'zookeeper': {'hosts': ['z:1'], 'use_acl': True}}, 'use_acl is True'),
])
def test_argument_checks(monkeypatch, home, args, message):
    args['fate_home'] = str(home)
    result = run(monkeypatch, args)
    assert result['failed'] and message in result['msg']


def test_docs_match_argument_spec():
    doc = yaml.safe_load(serving_link.DOCUMENTATION)
    yaml.safe_load(serving_link.EXAMPLES)
    yaml.safe_load(serving_link.RETURN)
    spec = serving_link.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, entry in spec.items():
        documented = doc['options'][name]
        assert documented.get('type', 'str') == entry.get('type', 'str'), name
        assert documented.get('default') == entry.get('default'), name
        assert bool(documented.get('required')) == bool(entry.get('required')), name
    assert set(doc['options']['zookeeper']['suboptions']) == set(spec['zookeeper']['options'])
    assert set(doc['attributes']) >= {'check_mode', 'diff_mode', 'idempotent'}
