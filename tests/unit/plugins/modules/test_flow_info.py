# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest
import requests

from ansible.module_utils.testing import patch_module_args

from ansible_collections.fate.flow.plugins.module_utils import _flow_client
from ansible_collections.fate.flow.plugins.modules import flow_info
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import FakeFlow, fixture, refused, run_module


@pytest.mark.parametrize('version, fate, flow, migrate, dup409', [
    ('1.4', '1.4.5', '1.4.5', False, False),
    ('1.5.0', '1.5.0', '1.5.0', False, False),
    ('1.6.1', '1.6.1', '1.6.1', True, False),
    ('1.8', '1.8.0', '1.8.0', True, False),
    ('1.11', '1.11.4', '1.11.2', True, True),
])
def test_versions_and_capabilities(monkeypatch, version, fate, flow, migrate, dup409):
    fake = FakeFlow(version)
    result = run_module(flow_info, {}, fake, monkeypatch)
    assert not result.get('failed')
    assert result['changed'] is False
    assert result['healthy'] is True and result['supported'] is True
    assert (result['fate_version'], result['flow_version'], result['api_version']) == (fate, flow, 'v1')
    assert result['capabilities']['supports_migrate'] is migrate
    assert result['capabilities']['duplicate_import_is_409'] is dup409
    assert result['flow_url'] == 'http://127.0.10.1:9380'


def test_same_in_check_mode(monkeypatch):
    result = run_module(flow_info, {}, FakeFlow('1.11'), monkeypatch, check_mode=True)
    assert result['healthy'] and result['changed'] is False


def test_down_flow_fails_by_default(monkeypatch):
    fake = FakeFlow().on('/v1/server/version/get', refused())
    result = run_module(flow_info, {'retries': 1}, fake, monkeypatch)
    assert result['failed'] and result['healthy'] is False
    assert result['reason'] == 'transport'
    assert len(fake.calls) == 2 and fake.sleeps == [0]


def test_down_flow_is_a_healthy_false_probe(monkeypatch):
    fake = FakeFlow().on('/v1/server/version/get', refused())
    result = run_module(flow_info, {'fail_on_unhealthy': False, 'retries': 0}, fake, monkeypatch)
    assert not result.get('failed')
    assert result['healthy'] is False and result['changed'] is False
    assert 'unreachable' in result['unhealthy_reason']


def test_not_a_flow_is_unhealthy(monkeypatch):
    result = run_module(flow_info, {'fail_on_unhealthy': False}, FakeFlow(), monkeypatch)
    assert result['healthy'] is False and 'not a FATE Flow 1.x' in result['unhealthy_reason']


def test_fate_flow_2_fails_even_as_a_probe(monkeypatch):
    result = run_module(flow_info, {'fail_on_unhealthy': False}, FakeFlow('2.0'), monkeypatch)
    assert result['failed'] and result['supported'] is False
    assert '2.x' in result['msg']


def test_refused_signature_fails_even_as_a_probe(monkeypatch):
    fake = FakeFlow().on('/v1/server/version/get', fixture('g3/auth_signature_401'))
    result = run_module(flow_info, {'fail_on_unhealthy': False, 'app_key': 'k', 'secret_key': 'wrong'}, fake, monkeypatch)
    assert result['failed'] and result['reason'] == 'auth' and result['http_status'] == 401
    assert 'app_key and secret_key' in result['msg']


def test_flow_url_from_environment(monkeypatch):
    monkeypatch.setenv('FATE_FLOW_URL', 'http://127.0.10.9:19380')
    fake = FakeFlow('1.11')
    args = {'flow_url': None}
    result = run_module(flow_info, args, fake, monkeypatch)
    assert result['flow_url'] == 'http://127.0.10.9:19380'
    assert fake.calls[0].url == 'http://127.0.10.9:19380/v1/server/version/get'


def test_secret_never_printed(monkeypatch, capsys):
    """Through the real exit_json/fail_json: the secret is not in the output, on success or failure."""
    secret = 'Very-Secret-Value-42'
    for fake in (FakeFlow('1.11'), FakeFlow('2.0')):
        def new_session(self, params, fake=fake):
            session = requests.Session()
            session.mount('http://', fake)
            return session
        monkeypatch.setattr(_flow_client.FlowClient, '_new_session', new_session)
        with patch_module_args({'flow_url': 'http://127.0.10.1:9380', 'app_key': 'fate', 'secret_key': secret}):
            with pytest.raises(SystemExit):
                flow_info.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        assert secret not in out
        assert 'SIGNATURE' not in out
        assert fake.calls[0].headers['APP_KEY'] == 'fate'
        assert result['invocation']['module_args']['secret_key'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
