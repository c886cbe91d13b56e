# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP plumbing both clients share (_http): error messages and keys, TLS options, the retry loop.

Every behaviour is checked through both real clients (FATE Flow and serving-proxy), so a change in
the shared code shows up as a change a user of either would notice.
"""

from __future__ import annotations

import pytest
import requests

from ansible_collections.fate.flow.plugins.module_utils import _http
from ansible_collections.fate.flow.plugins.module_utils._flow_client import FlowClient, FlowError
from ansible_collections.fate.flow.plugins.module_utils._flow_client import fail_from_error as flow_fail
from ansible_collections.fate.flow.plugins.module_utils._serving_client import INFERENCE_PATH, ServingClient, ServingError
from ansible_collections.fate.flow.plugins.module_utils._serving_client import fail_from_error as serving_fail
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    FakeFlow,
    ModuleFail,
    Reply,
    aborted,
    json_reply,
    refused,
)

FLOW_URL = 'https://192.0.2.10:9380'
PROXY_URL = 'https://192.0.2.21:8059'


class Module(object):
    """An AnsibleModule stand-in with both clients' options."""

    def __init__(self, **params):
        self.params = dict(flow_url=FLOW_URL, serving_proxy_url=PROXY_URL, timeout=30, retries=3, retry_delay=0.5,
                           validate_certs=True, ca_path=None, client_cert=None, client_key=None,
                           app_key=None, secret_key=None)
        self.params.update(params)
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, **kwargs):
        raise ModuleFail(kwargs)


class RecordingAdapter(FakeFlow):
    """FakeFlow that also keeps what requests handed the transport (TLS settings, timeout)."""

    def __init__(self):
        super(RecordingAdapter, self).__init__()
        self.settings = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.settings.append({'verify': verify, 'cert': cert, 'timeout': timeout})
        return super(RecordingAdapter, self).send(request, stream, timeout, verify, cert, proxies)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(_http.time, 'sleep', waited.append)
    return waited


def mounted(client, adapter):
    """Keep the client's own session (its TLS settings) but answer from ``adapter``."""
    client.session.mount('http://', adapter)
    client.session.mount('https://', adapter)
    return client


def flow_call(module, adapter):
    return mounted(FlowClient(module), adapter).post('/x', {})


def serving_call(module, adapter):
    return mounted(ServingClient(module), adapter).post(INFERENCE_PATH, {'head': {}})


CLIENTS = {
    'flow': (flow_call, '/v1/x', 'FATE Flow /v1/x', {'retcode': 0, 'retmsg': 'success'}),
    'serving': (serving_call, INFERENCE_PATH, 'serving-proxy ' + INFERENCE_PATH, {'retcode': 0, 'data': {}}),
}


# -- errors -------------------------------------------------------------------------------------------

def test_hint_follows_the_message_once():
    flow = FlowError('FATE Flow /v1/model/load failed with retcode 100: not deployed ', hint='Deploy it first.')
    assert flow.message == 'FATE Flow /v1/model/load failed with retcode 100: not deployed. Deploy it first.'
    assert str(flow) == flow.message
    said = FlowError('Deploy it first.', hint='Deploy it first.')
    assert said.message == 'Deploy it first.'
    # A FATE Flow message that ends in a bracket is complete; a serving-proxy one gets its full stop.
    assert FlowError('no endpoint (HTTP 404)', hint='Check flow_url.').message == 'no endpoint (HTTP 404) Check flow_url.'
    assert ServingError('unreachable (after 2 attempt(s))', hint='Check serving_proxy_url.').message == \
        'unreachable (after 2 attempt(s)). Check serving_proxy_url.'
    assert ServingError('no hint').message == 'no hint'


def test_fail_from_error_gives_the_structured_keys():
    module = Module()
    with pytest.raises(ModuleFail) as info:
        flow_fail(module, FlowError('Load failed', endpoint='/v1/model/load', retcode=100, retmsg='no',
                                    reason=FlowError.PARTY, party={'role': 'host', 'party_id': '10'},
                                    hint='Load it on the host.'), changed=False)
    assert info.value.result == {
        'msg': 'Load failed. Load it on the host.', 'endpoint': '/v1/model/load', 'http_status': None,
        'retcode': 100, 'retmsg': 'no', 'reason': 'party', 'party': {'role': 'host', 'party_id': '10'},
        'changed': False}
    with pytest.raises(ModuleFail) as info:
        serving_fail(module, ServingError('Inference failed', url=PROXY_URL + INFERENCE_PATH, http_status=500))
    assert info.value.result == {'msg': 'Inference failed', 'url': PROXY_URL + INFERENCE_PATH, 'http_status': 500,
                                 'retcode': None, 'retmsg': None, 'reason': 'transport'}
    # Each client keeps its own default reason.
    assert FlowError('x').reason == FlowError.RETCODE and ServingError('x').reason == ServingError.TRANSPORT


# -- TLS ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('client', sorted(CLIENTS))
@pytest.mark.parametrize('params, verify, cert', [
    ({}, True, None),
    ({'validate_certs': False, 'ca_path': '/etc/ca.pem'}, False, None),
    ({'ca_path': '/etc/ca.pem'}, '/etc/ca.pem', None),
    ({'client_cert': '/c.pem', 'client_key': '/k.pem'}, True, ('/c.pem', '/k.pem')),
    ({'client_cert': '/both.pem'}, True, '/both.pem'),
])
def test_tls_options_reach_the_request(client, params, verify, cert, monkeypatch):
    # A CA bundle in the environment must not turn verification back on after validate_certs=false.
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', '/etc/env-bundle.pem')
    call, path, _label, answer = CLIENTS[client]
    adapter = RecordingAdapter().on(path, json_reply(answer))
    assert call(Module(timeout=7, **params), adapter) == answer
    expected_verify = '/etc/env-bundle.pem' if verify is True else verify
    assert adapter.settings == [{'verify': expected_verify, 'cert': cert, 'timeout': 7}]


@pytest.mark.parametrize('client, service', [('flow', 'FATE Flow'), ('serving', 'the serving-proxy')])
def test_tls_error_is_not_resent_and_says_what_to_check(client, service):
    call, path, _label, _answer = CLIENTS[client]
    adapter = FakeFlow().on(path, requests.exceptions.SSLError('certificate verify failed'))
    with pytest.raises((FlowError, ServingError)) as info:
        call(Module(), adapter)
    assert len(adapter.calls) == 1 and info.value.reason == 'transport'
    assert info.value.message.startswith('TLS error talking to %s at ' % service)
    assert info.value.message.endswith('Check ca_path, client_cert/client_key, or set validate_certs=false for a '
                                       'test server.')


# -- retries --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('client', sorted(CLIENTS))
def test_502_and_503_are_resent_with_backoff(client, sleeps):
    call, path, label, answer = CLIENTS[client]
    adapter = FakeFlow().on(path, Reply(502, b'<html>Bad Gateway</html>'), Reply(503, b''), json_reply(answer))
    module = Module(retries=3, retry_delay=0.5)
    assert call(module, adapter) == answer
    assert len(adapter.calls) == 3 and sleeps == [0.5, 1.0]
    assert module.warnings == ['%s: HTTP 502; retrying in 0.5 s (attempt 2 of 4)' % label,
                               '%s: HTTP 503; retrying in 1.0 s (attempt 3 of 4)' % label]


@pytest.mark.parametrize('client, start, hint', [
    ('flow', 'FATE Flow at %s' % FLOW_URL, 'Check flow_url and that FATE Flow is running'),
    ('serving', 'The serving-proxy at %s' % PROXY_URL, 'Check serving_proxy_url (the serving-proxy HTTP port'),
])
def test_unreachable_after_the_last_attempt(client, start, hint, sleeps):
    call, path, _label, _answer = CLIENTS[client]
    adapter = FakeFlow().on(path, refused())
    with pytest.raises((FlowError, ServingError)) as info:
        call(Module(retries=2, retry_delay=1.0), adapter)
    assert len(adapter.calls) == 3 and sleeps == [1.0, 2.0]
    assert info.value.message.startswith(
        '%s is unreachable: could not connect ([Errno 111] Connection refused) (after 3 attempt(s)). %s'
        % (start, hint))
    assert info.value.reason == 'transport'


def test_a_broken_connection_is_resent_only_where_nothing_can_happen_twice():
    # An inference changes nothing: resent, and the warning says the connection broke.
    module = Module(retries=1)
    adapter = FakeFlow().on(INFERENCE_PATH, aborted(), json_reply({'retcode': 0}))
    assert serving_call(module, adapter) == {'retcode': 0}
    assert len(adapter.calls) == 2 and 'the connection broke (' in module.warnings[0]
    # A FATE Flow call that changes something is not resent.
    adapter = FakeFlow().on('/v1/x', aborted(), json_reply({'retcode': 0}))
    with pytest.raises(FlowError) as info:
        flow_call(Module(retries=1), adapter)
    assert len(adapter.calls) == 1 and 'It was not resent' in info.value.message


def test_last_gateway_answer_is_reported_not_hidden():
    module = Module(retries=1)
    adapter = FakeFlow().on(INFERENCE_PATH, Reply(503, b'<html><h1>503</h1> upstream down</html>'))
    with pytest.raises(ServingError) as info:
        serving_call(module, adapter)
    assert len(adapter.calls) == 2 and info.value.http_status == 503 and info.value.reason == ServingError.HTTP
    assert info.value.message == 'The serving-proxy at %s answered HTTP 503: 503 upstream down' % PROXY_URL
