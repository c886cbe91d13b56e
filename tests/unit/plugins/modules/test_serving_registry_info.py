# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

"""fate.flow.serving_registry_info against a fake kazoo client."""

from __future__ import annotations

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fate.flow.plugins.modules import serving_registry_info as sri

pytest.importorskip('kazoo')

PROVIDERS = [
    'grpc%3A%2F%2F127.0.0.1%3A8000%2FpublishLoad%3Frouter_mode%3DALL_ALLOWED%26timestamp%3D1%26version%3D216',
    'grpc%3A%2F%2F127.0.0.2%3A8000%2FpublishLoad%3Frouter_mode%3DALL_ALLOWED%26timestamp%3D2%26version%3D216',
    'grpc%3A%2F%2F127.0.0.1%3A8000%2FpublishLoad%3Frouter_mode%3DALL_ALLOWED%26timestamp%3D3%26version%3D216',
]


class _Exit(Exception):
    pass


class FakeClient(object):
    instances = []

    def __init__(self, hosts, auth_data=None, timeout=10):
        self.hosts, self.auth_data, self.timeout = hosts, auth_data, timeout
        self.children = PROVIDERS
        FakeClient.instances.append(self)

    def start(self, timeout=None):
        pass

    def exists(self, path):
        return object() if self.children is not None else None

    def get_children(self, path):
        return list(self.children)

    def stop(self):
        pass

    def close(self):
        pass


def run(monkeypatch, args):
    def exit_json(self, **kwargs):
        raise _Exit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg)
        raise _Exit(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(sri, 'KazooClient', FakeClient)
    with patch_module_args(args):
        with pytest.raises(_Exit) as info:
            sri.main()
    return info.value.args[0]


def test_serving_address():
    assert sri.serving_address(PROVIDERS[0]) == '127.0.0.1:8000'
    assert sri.serving_address('not-a-url') is None


def test_lists_each_serving_once_with_digest_auth(monkeypatch):
    result = run(monkeypatch, {'hosts': ['z1:2181', 'z2:2181'], 'use_acl': True, 'user': 'fate', 'password': 'pw'})
    assert result['changed'] is False and result['path_exists'] is True
    assert result['servings'] == ['127.0.0.1:8000', '127.0.0.2:8000']
    assert result['providers'][0].startswith('grpc://127.0.0.1:8000/publishLoad?')
    client = FakeClient.instances[-1]
    assert client.hosts == 'z1:2181,z2:2181' and client.auth_data == [('digest', 'fate:pw')]


def test_no_auth_is_a_clear_failure(monkeypatch):
    from kazoo.exceptions import NoAuthError

    def refuse(self, path):
        raise NoAuthError()

    monkeypatch.setattr(FakeClient, 'get_children', refuse)
    result = run(monkeypatch, {'hosts': ['z:2181'], 'use_acl': True, 'user': 'fate', 'password': 'Wr0ngPassw0rd'})
    assert result['failed'] and 'NoAuth' in result['msg'] and 'Wr0ngPassw0rd' not in repr(result)


def test_acl_needs_user_and_password(monkeypatch):
    result = run(monkeypatch, {'hosts': ['z:2181'], 'use_acl': True})
    assert result['failed'] and 'use_acl is True' in result['msg']


def test_zookeeper_down_names_hosts_and_what_to_check(monkeypatch):
    from kazoo.handlers.threading import KazooTimeoutError
    stopped = []

    def time_out(self, timeout=None):
        raise KazooTimeoutError('Connection time-out')

    def stop(self):
        stopped.append(self)

    monkeypatch.setattr(FakeClient, 'start', time_out)
    monkeypatch.setattr(FakeClient, 'stop', stop)
    result = run(monkeypatch, {'hosts': ['z:2181'], 'use_acl': True, 'user': 'fate', 'password': 'S3cretZk',
                               'timeout': 2})
    assert result['failed']
    assert 'cannot connect to ZooKeeper z:2181 within 2.0 s' in result['msg']
    assert 'check that ZooKeeper runs there' in result['msg'] and 'nothing was changed' in result['msg']
    assert 'S3cretZk' not in repr(result)
    assert stopped, 'the client is stopped before the module fails'


def test_unusable_hosts_are_a_clear_failure(monkeypatch):
    def bad_hosts(self, hosts, auth_data=None, timeout=10):
        raise ValueError('bad port')

    monkeypatch.setattr(FakeClient, '__init__', bad_hosts)
    result = run(monkeypatch, {'hosts': ['z:notaport']})
    assert result['failed'] and 'z:notaport' in result['msg'] and 'host:port' in result['msg']


def test_no_auth_says_what_to_check(monkeypatch):
    from kazoo.exceptions import NoAuthError

    def refuse(self, path):
        raise NoAuthError()

    monkeypatch.setattr(FakeClient, 'exists', refuse)
    result = run(monkeypatch, {'hosts': ['z:2181'], 'use_acl': True, 'user': 'fate', 'password': 'Wr0ngPw'})
    assert 'check use_acl, user and password' in result['msg'] and 'nothing was changed' in result['msg']
    assert 'Wr0ngPw' not in repr(result)
