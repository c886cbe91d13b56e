# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The serving-proxy client's helpers: model ids in answers, scores, hints, TLS settings."""

from __future__ import annotations

import pytest

from ansible_collections.fate.flow.plugins.module_utils import _serving_client
from ansible_collections.fate.flow.plugins.module_utils._serving_client import (
    ServingClient,
    ServingError,
    answer_score,
    code_hint,
    guest_party_model_id,
    served_model,
)
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import NEW_MODEL_ID, fixture_json


@pytest.mark.parametrize('model_id, party_id, expected', [
    (NEW_MODEL_ID, '99', 'guest#99#' + NEW_MODEL_ID),
    (NEW_MODEL_ID, 99, 'guest#99#' + NEW_MODEL_ID),
    ('guest#99#' + NEW_MODEL_ID, '98', 'guest#99#' + NEW_MODEL_ID),     # already a party model id
    (NEW_MODEL_ID, None, NEW_MODEL_ID),
    (NEW_MODEL_ID, '', NEW_MODEL_ID),
    (None, '99', None),
])
def test_guest_party_model_id(model_id, party_id, expected):
    assert guest_party_model_id(model_id, party_id) == expected


def test_served_model_and_score():
    answer = fixture_json('serving/inference_success', version='v1')
    assert served_model(answer) == ('guest#99#' + NEW_MODEL_ID, 'v1')
    assert answer_score(answer) == pytest.approx(0.4301418385426652)
    unbound = fixture_json('serving/inference_service_not_bound')
    assert served_model(unbound) == (None, None) and answer_score(unbound) is None


@pytest.mark.parametrize('answer', [None, [], {'data': None}, {'data': {'score': 'high'}}, {'data': {'score': True}}])
def test_no_score(answer):
    assert answer_score(answer) is None
    assert served_model(answer) == (None, None)


def test_version_is_text():
    assert served_model({'data': {'modelId': 'guest#9#m', 'modelVersion': 2020}}) == ('guest#9#m', '2020')


@pytest.mark.parametrize('code, text', [
    (110, 'bind it'), ('122', 'bind it'), (104, 'load it'), (2104, 'every guest and host party'),
    (2113, 'no features'), (2999, "the host's FATE-Serving log"), (0, None), (None, None), ('x', None),
])
def test_code_hints(code, text):
    hint = code_hint(code)
    assert (hint is None) if text is None else (text in hint)


def test_error_message_and_result():
    error = ServingError('Inference failed', url='http://p/federation/v1/inference', retcode=110, retmsg='',
                         reason=ServingError.RETCODE, hint='Bind it.', answer={'retcode': 110})
    assert error.message == 'Inference failed. Bind it.'
    assert error.result() == {'url': 'http://p/federation/v1/inference', 'http_status': None, 'retcode': 110,
                              'retmsg': '', 'reason': 'retcode', 'answer': {'retcode': 110}}


class _Module(object):
    def __init__(self, **params):
        self.params = dict(serving_proxy_url='https://192.0.2.21:8059', timeout=None, retries=None, retry_delay=None,
                           validate_certs=True, ca_path=None, client_cert=None, client_key=None)
        self.params.update(params)

    def fail_json(self, msg, **kwargs):
        raise AssertionError(msg)


@pytest.mark.parametrize('params, verify, cert', [
    ({}, True, None),
    ({'validate_certs': False}, False, None),
    ({'ca_path': '/etc/ca.pem'}, '/etc/ca.pem', None),
    ({'client_cert': '/c.pem', 'client_key': '/k.pem'}, True, ('/c.pem', '/k.pem')),
    ({'client_cert': '/both.pem'}, True, '/both.pem'),
])
def test_tls_settings(params, verify, cert):
    client = ServingClient(_Module(**params))
    assert client.verify == verify and client.session.verify == verify and client.session.cert == cert
    assert client.timeout == 30 and client.retries == 0 and client.url() == 'https://192.0.2.21:8059/federation/v1/inference'


def test_argument_spec_has_no_flow_options():
    spec = _serving_client.serving_argument_spec({'service_id': {'type': 'str'}})
    assert 'flow_url' not in spec and 'secret_key' not in spec and spec['serving_proxy_url']['required']
