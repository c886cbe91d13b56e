# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fate.flow.serving_inference against recorded serving-proxy answers (tests/unit/fixtures/replies/serving)."""

from __future__ import annotations

import os

import pytest
import requests
import yaml

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fate.flow.plugins.module_utils import _serving_client
from ansible_collections.fate.flow.plugins.modules import serving_inference
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    NEW_MODEL_ID,
    FakeFlow,
    ModuleExit,
    ModuleFail,
    aborted,
    fixture,
    refused,
)

PROXY = 'http://127.0.10.3:8059'
PATH = '/federation/v1/inference'
VERSION = '202006171911346893310_migrated'
GUEST_MODEL_ID = 'guest#99#' + NEW_MODEL_ID
ARGS = {'service_id': 'svc-credit', 'feature_data': {'x0': 0.25, 'x1': -0.5},
        'send_to_remote_feature_data': {'device_id': 'smoke-0001'}}


def run(args, fake, monkeypatch, check_mode=False, url=PROXY):
    """Run the module's main() against ``fake``; the result dict (``failed`` set on failure)."""
    args = dict(args)
    if url is not None:
        args.setdefault('serving_proxy_url', url)
    args.setdefault('retry_delay', 0)
    if check_mode:
        args['_ansible_check_mode'] = True
    warnings = []

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        kwargs['warnings'] = list(warnings)
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg, warnings=list(warnings))
        raise ModuleFail(kwargs)

    def new_session(self, params):
        session = requests.Session()
        session.mount('http://', fake)
        session.mount('https://', fake)
        return session

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warnings.append(msg))
    monkeypatch.setattr(_serving_client.ServingClient, '_new_session', new_session)
    monkeypatch.setattr(_serving_client.time, 'sleep', fake.sleeps.append)
    with patch_module_args(args):
        try:
            serving_inference.main()
        except ModuleExit as exc:
            return exc.result
    raise AssertionError('the module returned without exit_json or fail_json')


def proxy(*replies):
    return FakeFlow().on(PATH, *replies)


def success(version=VERSION):
    return fixture('serving/inference_success', version=version)


def test_answer_and_request(monkeypatch):
    fake = proxy(success())
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION), fake, monkeypatch)
    assert result['changed'] is False and 'failed' not in result
    assert result['serves_model'] is True
    assert result['expected_model_id'] == result['served_model_id'] == GUEST_MODEL_ID
    assert result['served_model_version'] == VERSION
    assert result['retcode'] == 0 and result['score'] == pytest.approx(0.4301418385426652)
    assert result['url'] == PROXY + PATH and result['answer']['data']['modelVersion'] == VERSION
    (call,) = fake.calls
    assert call.url == PROXY + PATH and call.headers['Content-Type'].startswith('application/json')
    assert call.json == {'head': {'serviceId': 'svc-credit'},
                         'body': {'featureData': {'x0': 0.25, 'x1': -0.5},
                                  'sendToRemoteFeatureData': {'device_id': 'smoke-0001'}}}


def test_party_model_id_given_as_served(monkeypatch):
    result = run(dict(ARGS, model_id=GUEST_MODEL_ID, model_version=VERSION, party_id='99'), proxy(success()),
                 monkeypatch)
    assert result['expected_model_id'] == GUEST_MODEL_ID and result['serves_model'] is True


def test_url_with_inference_path_and_trailing_slash(monkeypatch):
    fake = proxy(success())
    run(ARGS, fake, monkeypatch, url=PROXY + PATH + '/')
    assert fake.calls[0].url == PROXY + PATH


def test_no_model_to_compare(monkeypatch):
    result = run(ARGS, proxy(success()), monkeypatch)
    assert result['serves_model'] is None and 'expected_model_id' not in result


@pytest.mark.parametrize('extra', [
    {'model_version': 'another_version'},
    {'model_id': 'arbiter-100#guest-99#host-101#model', 'party_id': '99'},
    {'model_id': NEW_MODEL_ID, 'party_id': '98'},
])
def test_another_model_answers(monkeypatch, extra):
    args = dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION)
    args.update(extra)
    result = run(args, proxy(success()), monkeypatch)
    assert result['serves_model'] is False and result['retcode'] == 0


def test_require_model_fails_on_another_version(monkeypatch):
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version='v2', require='model'),
                 proxy(success()), monkeypatch)
    assert result['failed'] and result['reason'] == 'mismatch'
    assert 'not from %s version v2' % GUEST_MODEL_ID in result['msg'] and 'fate.flow.model_bind' in result['msg']
    assert result['answer']['data']['modelVersion'] == VERSION


def test_unbound_service_is_an_answer_by_default(monkeypatch):
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION),
                 proxy(fixture('serving/inference_service_not_bound')), monkeypatch)
    assert 'failed' not in result
    assert result['retcode'] == 110 and result['serves_model'] is False and result['score'] is None
    assert result['served_model_id'] is None and result['served_model_version'] is None


@pytest.mark.parametrize('require', ['score', 'model'])
def test_unbound_service_fails_when_a_score_is_required(monkeypatch, require):
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION, require=require),
                 proxy(fixture('serving/inference_service_not_bound')), monkeypatch)
    assert result['failed'] and result['reason'] == 'retcode' and result['retcode'] == 110
    assert 'bind it (fate.flow.model_bind)' in result['msg'] and result['service_id'] == 'svc-credit'


def test_host_without_model(monkeypatch):
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION, require='score'),
                 proxy(fixture('serving/inference_host_model_missing', version=VERSION)), monkeypatch)
    assert result['failed'] and result['retcode'] == 2104
    assert 'every guest and host party' in result['msg'] and 'mode is null' in result['retmsg']


def test_host_without_model_is_not_served(monkeypatch):
    """The guest names the right model, but the host cannot score: not served (a rerun must load again)."""
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION),
                 proxy(fixture('serving/inference_host_model_missing', version=VERSION)), monkeypatch)
    assert result['served_model_version'] == VERSION and result['serves_model'] is False


def test_check_mode_sends_the_same_request(monkeypatch):
    fake = proxy(success())
    result = run(dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION), fake, monkeypatch,
                 check_mode=True)
    assert result['changed'] is False and result['serves_model'] is True and len(fake.calls) == 1


def test_second_run_same_answer(monkeypatch):
    fake = proxy(success())
    args = dict(ARGS, model_id=NEW_MODEL_ID, party_id='99', model_version=VERSION)
    first, second = run(args, fake, monkeypatch), run(args, fake, monkeypatch)
    assert first['changed'] is second['changed'] is False
    assert first['serves_model'] is second['serves_model'] is True


def test_retries_502_then_answers(monkeypatch):
    fake = proxy(fixture('common/nginx_502'), success())
    result = run(ARGS, fake, monkeypatch)
    assert result['retcode'] == 0 and len(fake.calls) == 2 and fake.sleeps == [0.0]
    assert 'HTTP 502' in result['warnings'][0]


def test_broken_connection_is_resent(monkeypatch):
    """An inference changes nothing: unlike FATE Flow's load or bind, it is safe to send again."""
    fake = proxy(aborted(), success())
    assert run(ARGS, fake, monkeypatch)['retcode'] == 0 and len(fake.calls) == 2


def test_unreachable(monkeypatch):
    fake = proxy(refused(PROXY))
    result = run(dict(ARGS, retries=2), fake, monkeypatch)
    assert result['failed'] and result['reason'] == 'transport' and len(fake.calls) == 3
    assert 'Connection refused' in result['msg'] and 'serving_proxy_url' in result['msg']


def test_timeout_is_not_retried(monkeypatch):
    fake = proxy(requests.exceptions.ReadTimeout('read timed out'))
    result = run(ARGS, fake, monkeypatch)
    assert result['failed'] and 'within 30 seconds' in result['msg'] and len(fake.calls) == 1


@pytest.mark.parametrize('name, reason, text', [
    ('serving/proxy_not_found_404', 'endpoint_missing', 'serving-proxy HTTP port'),
    ('common/html_404', 'endpoint_missing', 'not FATE Flow'),
    ('g4/not_found_path', 'endpoint_missing', 'This looks like FATE Flow'),
    ('serving/proxy_error_500', 'http', 'request body is not a JSON object'),
    ('common/plain_200', 'not_json', 'not a FATE-Serving answer'),
    ('common/empty_200', 'not_json', '(empty)'),
])
def test_not_a_serving_answer(monkeypatch, name, reason, text):
    result = run(ARGS, proxy(fixture(name)), monkeypatch)
    assert result['failed'] and result['reason'] == reason and text in result['msg'], result


@pytest.mark.parametrize('args, text', [
    (dict(ARGS, service_id='  '), 'service_id must not be empty'),
    (dict(ARGS, require='model', model_id=NEW_MODEL_ID), 'require=model needs model_id and model_version'),
])
def test_bad_input_sends_nothing(monkeypatch, args, text):
    fake = proxy(success())
    result = run(args, fake, monkeypatch)
    assert result['failed'] and text in result['msg'] and fake.calls == []


def test_bad_url(monkeypatch):
    fake = proxy(success())
    result = run(ARGS, fake, monkeypatch, url='127.0.10.3:8059')
    assert result['failed'] and 'http://127.0.0.1:8059' in result['msg'] and fake.calls == []


def test_url_from_environment(monkeypatch):
    monkeypatch.setenv('FATE_SERVING_PROXY_URL', 'http://192.0.2.21:8059')
    fake = proxy(success())
    run(ARGS, fake, monkeypatch, url=None)
    assert fake.calls[0].url == 'http://192.0.2.21:8059' + PATH


def test_docs_match_argument_spec(monkeypatch):
    captured = {}

    class Captured(Exception):
        pass

    def capture(self, **kwargs):
        captured.update(kwargs)
        raise Captured()

    monkeypatch.setattr(basic.AnsibleModule, '__init__', capture)
    with patch_module_args({}):
        with pytest.raises(Captured):
            serving_inference.main()
    doc = yaml.safe_load(serving_inference.DOCUMENTATION)
    yaml.safe_load(serving_inference.EXAMPLES)
    yaml.safe_load(serving_inference.RETURN)
    assert doc['module'] == 'serving_inference'
    spec = captured['argument_spec']
    assert set(doc['options']) == set(spec)
    for option, entry in spec.items():
        documented = doc['options'][option]
        assert documented.get('type', 'str') == entry.get('type', 'str'), option
        assert documented.get('default') == entry.get('default'), option
        assert bool(documented.get('required')) == bool(entry.get('required')), option
        assert documented.get('choices') == entry.get('choices'), option
    assert captured['supports_check_mode'] is True
    assert set(doc['attributes']) == {'check_mode', 'diff_mode', 'idempotent'}


def test_not_in_the_fate_flow_action_group():
    """module_defaults for group/fate.flow.fate_flow set flow_url etc., which this module does not take."""
    root = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')
    with open(os.path.join(root, 'meta', 'runtime.yml')) as handle:
        runtime = yaml.safe_load(handle)
    assert 'serving_inference' not in runtime['action_groups']['fate_flow']
