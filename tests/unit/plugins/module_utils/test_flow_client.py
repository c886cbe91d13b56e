# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

import pytest
import requests

from ansible_collections.fate.flow.plugins.module_utils import _flow_client as fc
from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowCapabilities,
    FlowClient,
    FlowError,
    check_party_results,
)
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    FakeFlow,
    ModuleFail,
    Reply,
    aborted,
    fixture,
    fixture_json,
    json_reply,
    make_archive,
    refused,
)


class StubModule(object):
    def __init__(self, **params):
        self.params = dict(flow_url='http://127.0.10.1:9380', timeout=30, retries=3, retry_delay=0.5,
                           validate_certs=True, ca_path=None, client_cert=None, client_key=None,
                           app_key=None, secret_key=None)
        self.params.update(params)
        self.warnings = []
        self.check_mode = False

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, **kwargs):
        raise ModuleFail(kwargs)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    sleeps = []
    monkeypatch.setattr(fc.time, 'sleep', sleeps.append)
    return sleeps


def make_client(fake, **params):
    session = requests.Session()
    session.mount('http://', fake)
    session.mount('https://', fake)
    return FlowClient(StubModule(**params), session=session)


# -- URL and options --------------------------------------------------------------------------------

@pytest.mark.parametrize('url, base', [
    ('http://127.0.0.1:9380', 'http://127.0.0.1:9380'),
    ('http://127.0.0.1:9380/', 'http://127.0.0.1:9380'),
    ('http://127.0.0.1:9380/v1', 'http://127.0.0.1:9380'),
    ('https://flow.example/fate/v1/', 'https://flow.example/fate'),
])
def test_base_url(url, base):
    client = make_client(FakeFlow(), flow_url=url)
    assert client.base_url == base
    assert client.url('/model/load') == base + '/v1/model/load'


@pytest.mark.parametrize('url', ['127.0.0.1:9380', 'ftp://x', '', 'http://'])
def test_base_url_refused(url):
    with pytest.raises(ModuleFail, match='flow_url must be'):
        make_client(FakeFlow(), flow_url=url)


def test_missing_requests_fails_cleanly(monkeypatch):
    monkeypatch.setattr(fc, 'HAS_REQUESTS', False)
    monkeypatch.setattr(fc, 'REQUESTS_IMPORT_ERROR', 'Traceback: ImportError')
    with pytest.raises(ModuleFail) as info:
        FlowClient(StubModule())
    assert 'requests' in info.value.result['msg']
    assert info.value.result['exception'] == 'Traceback: ImportError'


def test_tls_settings():
    assert FlowClient._verify_setting({'validate_certs': True, 'ca_path': None}) is True
    assert FlowClient._verify_setting({'validate_certs': False, 'ca_path': '/ca.pem'}) is False
    assert FlowClient._verify_setting({'validate_certs': True, 'ca_path': '/ca.pem'}) == '/ca.pem'
    client = FlowClient(StubModule(flow_url='https://x:9380', client_cert='/c.pem', client_key='/k.pem'))
    assert client.session.cert == ('/c.pem', '/k.pem') and client.session.verify is True
    client = FlowClient(StubModule(flow_url='https://x:9380', validate_certs=False, client_cert='/ck.pem'))
    assert client.session.cert == '/ck.pem' and client.session.verify is False


def test_argument_spec_shape():
    spec = fc.flow_argument_spec({'model_id': {'type': 'str'}})
    assert spec['secret_key']['no_log'] is True
    assert spec['flow_url']['required'] is True
    assert 'model_id' in spec
    kwargs = fc.flow_module_kwargs({}, supports_check_mode=True)
    assert ['app_key', 'secret_key'] in kwargs['required_together']
    assert kwargs['required_by'] == {'client_key': 'client_cert'}


# -- envelope ------------------------------------------------------------------------------------------

def test_success_returns_envelope():
    fake = FakeFlow().on('/v1/model/bind', fixture('g4/bind_success'))
    body = make_client(fake).post('/model/bind', {'service_id': 'svc-credit'})
    assert body == {'retcode': 0, 'retmsg': 'service id is svc-credit'}
    call = fake.calls[0]
    assert call.method == 'POST' and call.headers['Content-Type'] == 'application/json'
    assert call.json == {'service_id': 'svc-credit'}


def test_business_retcode_is_one_error_and_never_retried():
    fake = FakeFlow().on('/v1/model/bind', fixture('g3/bind_no_servings'))
    with pytest.raises(FlowError) as info:
        make_client(fake).post('/model/bind', {})
    err = info.value
    assert (err.endpoint, err.http_status, err.retcode, err.reason) == ('/v1/model/bind', 200, 100, FlowError.RETCODE)
    assert err.retmsg == 'Please configure servings address'
    assert 'service_conf.yaml' in err.message  # says what to do
    assert len(fake.calls) == 1


@pytest.mark.parametrize('name, reason, status', [
    ('common/html_404', FlowError.ENDPOINT_MISSING, 404),
    ('common/html_405', FlowError.ENDPOINT_MISSING, 405),
    ('g4/not_found_path', FlowError.ENDPOINT_MISSING, 200),
    ('g4/method_not_allowed', FlowError.ENDPOINT_MISSING, 200),
    ('common/plain_200', FlowError.NOT_JSON, 200),
    ('common/empty_200', FlowError.NOT_JSON, 200),
    ('g4/import_conflict_409', FlowError.CONFLICT, 409),
    ('g4/export_missing_404', FlowError.NOT_FOUND, 404),
    ('g2/export_missing_210', FlowError.NOT_FOUND, 210),
    ('g4/import_party_not_in_role_400', FlowError.HTTP, 400),
    ('g3/auth_signature_401', FlowError.AUTH, 401),
    ('g4/auth_109', FlowError.AUTH, 200),
    ('v2/not_found_path', FlowError.UNSUPPORTED, 200),
])
def test_error_shapes(name, reason, status):
    fake = FakeFlow().on('/v1/model/x', fixture(name))
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=0).post('/model/x', {})
    err = info.value
    assert err.reason == reason
    assert err.http_status == status
    assert err.endpoint == '/v1/model/x'
    assert set(err.result()) >= {'endpoint', 'http_status', 'retcode', 'retmsg', 'reason'}
    assert '<' not in (err.retmsg or '') or name.startswith('g4/') or name.startswith('v2/')  # HTML is stripped


def test_html_404_message_is_short_and_actionable():
    fake = FakeFlow()
    with pytest.raises(FlowError) as info:
        make_client(fake).post('/model/query', {})
    assert 'has no endpoint /v1/model/query (HTTP 404)' in info.value.message
    assert 'Not Found' in info.value.retmsg and '<title>' not in info.value.retmsg


def test_auth_error_hint():
    fake = FakeFlow().on('/v1/model/load', fixture('g3/auth_signature_401'))
    with pytest.raises(FlowError) as info:
        make_client(fake).post('/model/load', {})
    assert 'app_key and secret_key' in info.value.message


# -- retries ------------------------------------------------------------------------------------------

def test_502_is_retried_with_exponential_backoff(no_sleep):
    fake = FakeFlow().on('/v1/model/query', fixture('common/nginx_502'), fixture('common/nginx_502'),
                         fixture('g4/query_migrated_guest'))
    client = make_client(fake, retries=3, retry_delay=0.5)
    body = client.post('/model/query', {})
    assert body['retcode'] == 0
    assert len(fake.calls) == 3
    assert no_sleep == [0.5, 1.0]
    assert len(client.module.warnings) == 2 and 'HTTP 502' in client.module.warnings[0]


def test_502_then_failure_after_retries(no_sleep):
    fake = FakeFlow().on('/v1/model/query', fixture('common/nginx_502'))
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=2, retry_delay=1).post('/model/query', {})
    assert len(fake.calls) == 3
    assert no_sleep == [1, 2]
    assert info.value.http_status == 502 and info.value.reason == FlowError.HTTP


def test_503_retried():
    fake = FakeFlow().on('/v1/x', json_reply({'retcode': 100, 'retmsg': 'busy'}, 503), json_reply({'retcode': 0}))
    assert make_client(fake).post('/x')['retcode'] == 0
    assert len(fake.calls) == 2


@pytest.mark.parametrize('status', [500, 504])
def test_500_504_retried_only_for_reads(status):
    fake = FakeFlow().on('/v1/model/query', Reply(status, b'<html>oops</html>'),
                         json_reply({'retcode': 0, 'data': []}))
    assert make_client(fake).post('/model/query', {}, read_only=True)['retcode'] == 0
    assert len(fake.calls) == 2
    fake = FakeFlow().on('/v1/model/import', Reply(status, b'<html>oops</html>'),
                         json_reply({'retcode': 0}))
    with pytest.raises(FlowError) as info:
        make_client(fake).post('/model/import', {})
    assert len(fake.calls) == 1
    assert info.value.reason == FlowError.HTTP and info.value.http_status == status
    assert 'HTTP %d (oops)' % status in info.value.message
    assert 'The request was not resent: it may have completed on the server' in info.value.message


def test_502_after_retries_says_how_often_and_what_to_do():
    fake = FakeFlow().on('/v1/model/import', fixture('common/nginx_502'))
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=3).post('/model/import', {})
    assert len(fake.calls) == 4
    message = info.value.message
    assert message.startswith('FATE Flow at http://127.0.10.1:9380 answered /v1/model/import with HTTP 502 (')
    assert '4 attempts in a row' in message
    assert 'check that FATE Flow runs and what its logs (fate_flow_stat.log) say, then run again' in message
    assert 'not resent' not in message


def test_read_timeout_on_a_read_is_retried_then_fails_clearly(no_sleep):
    fake = FakeFlow().on('/v1/model/query', requests.exceptions.ReadTimeout('read timed out'))
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=2, timeout=7).post('/model/query', {}, read_only=True)
    assert len(fake.calls) == 3 and no_sleep == [0.5, 1.0]
    assert info.value.reason == FlowError.TRANSPORT
    assert info.value.message.startswith('FATE Flow at http://127.0.10.1:9380 did not answer POST /v1/model/query '
                                         'within 7 seconds (3 attempt(s)).')
    fake = FakeFlow().on('/v1/model/query', requests.exceptions.ReadTimeout('read timed out'),
                         json_reply({'retcode': 0}))
    assert make_client(fake).post('/model/query', {}, read_only=True) == {'retcode': 0}


@pytest.mark.parametrize('status', [500, 502])
def test_version_detection_reports_a_failing_flow_not_a_missing_endpoint(status):
    fake = FakeFlow('1.6.1').on('/v1/version/get', Reply(status, b'<html>bad</html>'))
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=1).ensure_supported()
    assert info.value.endpoint == '/v1/version/get' and info.value.http_status == status
    assert 'no endpoint' not in info.value.message
    assert len(fake.calls_to('/v1/version/get')) == 2


@pytest.mark.parametrize('status', [500, 400, 409])
def test_other_statuses_not_retried(status):
    fake = FakeFlow().on('/v1/x', json_reply({'retcode': status, 'retmsg': 'no'}, status))
    with pytest.raises(FlowError):
        make_client(fake).post('/x')
    assert len(fake.calls) == 1


def test_connection_error_retried_then_transport_error(no_sleep):
    fake = FakeFlow().on('/v1/x', refused())
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=2, retry_delay=0.1).post('/x')
    assert len(fake.calls) == 3
    assert info.value.reason == FlowError.TRANSPORT
    assert 'unreachable' in info.value.message and 'after 3 attempt' in info.value.message
    assert '[Errno 111] Connection refused' in info.value.message
    assert no_sleep == [0.1, 0.2]


def test_connection_error_then_success():
    fake = FakeFlow().on('/v1/x', refused(), json_reply({'retcode': 0}))
    assert make_client(fake).post('/x') == {'retcode': 0}


@pytest.mark.parametrize('endpoint', ['/model/migrate', '/model/import', '/model/load', '/model/bind', '/model/deploy'])
def test_connection_broken_after_sending_is_not_resent(endpoint):
    fake = FakeFlow().on('/v1' + endpoint, aborted(), json_reply({'retcode': 0}))
    with pytest.raises(FlowError) as info:
        make_client(fake).post(endpoint, {})
    assert len(fake.calls) == 1
    assert info.value.reason == FlowError.TRANSPORT
    assert 'It was not resent' in info.value.message and 'Connection aborted' in info.value.message


def test_connection_broken_on_a_read_is_retried():
    fake = FakeFlow('1.11').on('/v1/model/query', aborted(), fixture('g4/query_migrated_guest'))
    rows = make_client(fake).query_models(model_id='m')
    assert len(rows) == 1 and len(fake.calls_to('/v1/model/query')) == 2


def test_never_connected_classification():
    assert fc._never_connected(refused())
    assert fc._never_connected(requests.exceptions.ConnectTimeout('connect timeout'))
    assert not fc._never_connected(aborted())
    assert not fc._never_connected(requests.exceptions.ConnectionError('something'))


def test_read_timeout_not_retried():
    fake = FakeFlow().on('/v1/model/migrate', requests.exceptions.ReadTimeout('read timed out'))
    with pytest.raises(FlowError) as info:
        make_client(fake).post('/model/migrate', {})
    assert len(fake.calls) == 1
    assert 'did not answer POST /v1/model/migrate within 30 seconds' in info.value.message
    assert 'It was not resent: the operation may still complete' in info.value.message


def test_tls_error_not_retried():
    fake = FakeFlow().on('/v1/x', requests.exceptions.SSLError('certificate verify failed'))
    with pytest.raises(FlowError) as info:
        make_client(fake, flow_url='https://x:9380').post('/x')
    assert len(fake.calls) == 1
    assert 'validate_certs' in info.value.message


def test_zero_retries():
    fake = FakeFlow().on('/v1/x', fixture('common/nginx_502'))
    with pytest.raises(FlowError):
        make_client(fake, retries=0).post('/x')
    assert len(fake.calls) == 1


# -- signing -----------------------------------------------------------------------------------------

def _expected_signature(secret, call, form=b''):
    h = call.headers
    message = b'\n'.join([h['TIMESTAMP'].encode(), h['NONCE'].encode(), h['APP_KEY'].encode(),
                          call.path.encode(), b'' if form else call.body, form])
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha1).digest()).decode()


def test_json_request_is_signed_as_the_flow_cli_signs():
    fake = FakeFlow().on('/v1/model/migrate', json_reply({'retcode': 0, 'data': {}}))
    make_client(fake, app_key='K', secret_key='S3cr3t').post('/model/migrate', {'model_id': 'm', 'role': {'guest': [9]}})
    call = fake.calls[0]
    assert call.headers['APP_KEY'] == 'K'
    assert len(call.headers['TIMESTAMP']) == 13 and call.headers['TIMESTAMP'].isdigit()
    assert len(call.headers['NONCE']) == 36 and call.headers['NONCE'][14] == '1'  # uuid1
    assert call.headers['SIGNATURE'] == _expected_signature('S3cr3t', call)
    assert 'S3cr3t' not in json.dumps(call.headers)


def test_signature_known_vector():
    client = make_client(FakeFlow(), app_key='K', secret_key='S')
    headers = client.signature_headers('/v1/model/migrate', b'{"a": 1}', timestamp='1600000000000',
                                       nonce='6fa459ea-ee8a-11e0-8001-000000000000')
    message = b'1600000000000\n6fa459ea-ee8a-11e0-8001-000000000000\nK\n/v1/model/migrate\n{"a": 1}\n'
    assert headers['SIGNATURE'] == base64.b64encode(hmac.new(b'S', message, hashlib.sha1).digest()).decode()


def test_multipart_signature_covers_sorted_form_fields_not_the_file(tmp_path):
    archive = make_archive(str(tmp_path / 'guest#99#m_v.zip'))
    fake = FakeFlow().on('/v1/model/import', fixture('g2/import_success'))
    client = make_client(fake, app_key='K', secret_key='S')
    client.upload('/model/import', [('role', 'guest'), ('party_id', '99'), ('model_id', 'a#b'), ('model_version', 'v 1')],
                  archive)
    call = fake.calls[0]
    form = urlencode(sorted([('role', 'guest'), ('party_id', '99'), ('model_id', 'a#b'), ('model_version', 'v 1')]),
                     quote_via=quote, safe='-._~').encode()
    assert form == b'model_id=a%23b&model_version=v%201&party_id=99&role=guest'
    assert call.headers['SIGNATURE'] == _expected_signature('S', call, form)


def test_each_attempt_is_signed_afresh():
    fake = FakeFlow().on('/v1/x', fixture('common/nginx_502'), json_reply({'retcode': 0}))
    make_client(fake, app_key='K', secret_key='S').post('/x', {})
    first, second = fake.calls
    assert first.headers['NONCE'] != second.headers['NONCE']
    assert second.headers['SIGNATURE'] == _expected_signature('S', second)


def test_no_signing_without_keys():
    fake = FakeFlow().on('/v1/x', json_reply({'retcode': 0}))
    make_client(fake).post('/x', {})
    assert not set(fake.calls[0].headers) & {'TIMESTAMP', 'NONCE', 'APP_KEY', 'SIGNATURE'}


def test_errors_never_carry_headers_or_secrets():
    fake = FakeFlow().on('/v1/x', fixture('g3/auth_signature_401'))
    with pytest.raises(FlowError) as info:
        make_client(fake, app_key='K', secret_key='TopSecretValue').post('/x', {})
    dumped = json.dumps(info.value.result()) + info.value.message
    assert 'TopSecretValue' not in dumped and 'SIGNATURE' not in dumped


# -- version detection --------------------------------------------------------------------------------

@pytest.mark.parametrize('version, fate, flow, api, source, calls', [
    ('1.4', '1.4.5', '1.4.5', 'v1', '/v1/version/get', 2),
    ('1.5.0', '1.5.0', '1.5.0', 'v1', '/v1/version/get', 2),
    ('1.6.0', '1.6.0', '1.6.0', 'v1', '/v1/version/get', 2),
    ('1.6.1', '1.6.1', '1.6.1', 'v1', '/v1/version/get', 2),
    ('1.7.0', '1.7.0', '1.7.0', 'v1', '/v1/server/version/get', 1),
    ('1.8', '1.8.0', '1.8.0', 'v1', '/v1/server/version/get', 1),
    ('1.9', '1.9.0', '1.9.0', 'v1', '/v1/server/version/get', 1),
    ('1.11', '1.11.4', '1.11.2', 'v1', '/v1/server/version/get', 1),
])
def test_version_detection_per_group(version, fate, flow, api, source, calls):
    fake = FakeFlow(version)
    client = make_client(fake)
    caps = client.capabilities
    assert (caps.fate_version, caps.flow_version, caps.api_version, caps.source) == (fate, flow, api, source)
    assert caps.supported
    assert len(fake.calls) == calls
    if calls == 2:
        assert fake.calls[1].json == {'module': 'FATE'}
    client.capabilities  # pylint: disable=pointless-statement
    assert len(fake.calls) == calls  # cached per client


def test_version_1_10_plus_never_trusts_the_old_path():
    # 1.10+ answers /v1/version/get with 200 retcode 100 NotFound: the new endpoint must be the one used.
    fake = FakeFlow('1.11')
    assert make_client(fake).capabilities.flow_version == '1.11.2'
    assert [c.path for c in fake.calls] == ['/v1/server/version/get']


def test_old_version_get_keyed_by_module_name():
    fake = FakeFlow().on('/v1/version/get', json_reply({'retcode': 0, 'retmsg': 'success', 'data': {'null': '1.5.1'}}))
    assert make_client(fake).capabilities.fate_version == '1.5.1'


def test_fate_flow_2_refused_by_envelope():
    fake = FakeFlow('2.0')
    with pytest.raises(FlowError) as info:
        make_client(fake).capabilities  # pylint: disable=expression-not-assigned
    assert info.value.reason == FlowError.UNSUPPORTED
    assert '2.x' in info.value.message


def test_fate_flow_2_refused_when_v1_is_html_404():
    fake = FakeFlow().on('/v2/server/fateflow', fixture('v2/server_fateflow'), method='GET')
    with pytest.raises(FlowError) as info:
        make_client(fake).capabilities  # pylint: disable=expression-not-assigned
    assert info.value.reason == FlowError.UNSUPPORTED
    assert 'serves the /v2 API' in info.value.message


def test_fate_flow_2_refused_by_version():
    fake = FakeFlow().on('/v1/server/version/get', json_reply({'retcode': 0, 'data': {'FATE': '2.1.0', 'FATEFlow': '2.1.0', 'API': 'v2'}}))
    with pytest.raises(FlowError) as info:
        make_client(fake).capabilities  # pylint: disable=expression-not-assigned
    assert 'fate.flow supports FATE Flow 1.4 to 1.11' in info.value.message


def test_not_a_fate_flow():
    fake = FakeFlow()
    with pytest.raises(FlowError) as info:
        make_client(fake).capabilities  # pylint: disable=expression-not-assigned
    assert info.value.reason == FlowError.ENDPOINT_MISSING
    assert 'not a FATE Flow 1.x' in info.value.message


def test_unreachable_flow_is_transport_error():
    fake = FakeFlow().on('/v1/server/version/get', refused())
    with pytest.raises(FlowError) as info:
        make_client(fake, retries=1).capabilities  # pylint: disable=expression-not-assigned
    assert info.value.reason == FlowError.TRANSPORT
    assert len(fake.calls) == 2


def test_signed_server_refusing_version_is_auth_error():
    fake = FakeFlow().on('/v1/server/version/get', fixture('g3/auth_signature_401'))
    with pytest.raises(FlowError) as info:
        make_client(fake).capabilities  # pylint: disable=expression-not-assigned
    assert info.value.reason == FlowError.AUTH
    assert len(fake.calls) == 1


# -- capabilities -------------------------------------------------------------------------------------

CAPS = {
    #            migrate query  deploy sha1   force409 keeps  strids work_mode temp
    '1.4.5': (False, False, False, False, False, False, True, True, 'temp/fate_flow'),
    '1.5.0': (False, False, False, False, False, False, True, True, 'temp/fate_flow'),
    '1.5.1': (True, True, True, False, False, False, True, True, 'temp/fate_flow'),
    '1.5.2': (True, True, True, True, False, False, True, True, 'temp/fate_flow'),
    '1.6.0': (True, True, True, False, False, False, True, True, 'temp/fate_flow'),
    '1.6.1': (True, True, True, True, False, False, True, True, 'temp/fate_flow'),
    '1.7.0': (True, True, True, True, False, False, True, False, 'fateflow/temp'),
    '1.7.1': (True, True, True, True, False, False, False, False, 'fateflow/temp'),
    '1.8.0': (True, True, True, True, False, False, False, False, 'fateflow/temp'),
    '1.9.0': (True, True, True, False, True, True, False, False, 'fateflow/temp'),
    '1.11.2': (True, True, True, False, True, True, False, False, 'fateflow/temp'),
}


@pytest.mark.parametrize('version', sorted(CAPS))
def test_capabilities_table(version):
    caps = FlowCapabilities({'FATE': version})
    expected = CAPS[version]
    actual = (caps.supports_migrate, caps.supports_query, caps.supports_deploy, caps.writes_sha1_sidecar,
              caps.duplicate_import_is_409 and caps.import_has_force_update_and_hash, caps.keeps_migrated_model,
              caps.serving_needs_str_party_ids, caps.load_needs_work_mode, caps.temp_dir)
    assert actual == expected
    assert caps.migrate_needs_int_party_ids is True
    assert caps.supported
    assert set(caps.as_dict()) == set(FlowCapabilities.NAMES)


def test_capabilities_follow_fate_flow_version_over_fate():
    caps = FlowCapabilities({'FATE': '1.11.4', 'FATEFlow': '1.11.2', 'API': 'v1'})
    assert caps.flow_version == '1.11.2' and caps.fate_version == '1.11.4'
    caps = FlowCapabilities({'FATE': '1.7.2', 'FATEFlow': '1.7.0'})
    assert caps.serving_needs_str_party_ids  # 1.7.0 Flow is what matters


def test_capabilities_layout():
    assert FlowCapabilities({'FATE': '1.4.5'}).config_files == ['arch/conf/server_conf.json', 'arch/conf/base_conf.yaml']
    assert FlowCapabilities({'FATE': '1.6.1'}).model_local_cache == 'model_local_cache'
    assert FlowCapabilities({'FATE': '1.8.0'}).model_local_cache == 'fateflow/model_local_cache'
    assert FlowCapabilities({'FATE': '1.9.0'}).export_missing_status == 404
    assert FlowCapabilities({'FATE': '1.6.1'}).export_missing_status == 210


@pytest.mark.parametrize('versions, supported', [
    ({'FATE': '2.0.0'}, False), ({'FATE': '1.3.0'}, False), ({'FATE': 'master'}, False),
    ({'FATE': '1.11.4', 'API': 'v2'}, False), ({'FATE': 'v1.6.1'}, True), ({'FATE': '1.9.0-rc1'}, True),
])
def test_supported_range(versions, supported):
    caps = FlowCapabilities(versions)
    assert caps.supported is supported
    if not supported:
        assert caps.unsupported_reason()


# -- per-party results --------------------------------------------------------------------------------

def test_migrate_success_with_failed_party_is_a_failure():
    body = fixture_json('g4/migrate_party_failed', archive_dir='/tmp')
    with pytest.raises(FlowError) as info:
        check_party_results('/model/migrate', body, [('arbiter', 10000), ('guest', 9999), ('host', 10000)])
    err = info.value
    assert err.reason == FlowError.PARTY and err.retcode == 0 and err.retmsg == 'success'
    assert 'host 10000: Can not found' in err.message
    assert err.party == {'role': 'host', 'party_id': 10000}
    assert [p['ok'] for p in err.parties] == [True, True, False]


def test_migrate_transport_failure_names_unreached_parties():
    body = fixture_json('g3/migrate_transport_failure')
    with pytest.raises(FlowError) as info:
        check_party_results('/model/migrate', body, [('arbiter', 10000), ('guest', 9999), ('host', 10000)])
    err = info.value
    assert 'failed on 2 of 3 parties' in err.message
    assert 'arbiter 10000: no answer from this party' in err.message
    assert 'host 10000: no answer' in err.message
    assert err.retcode == 101


def test_party_missing_from_answer():
    body = {'retcode': 0, 'retmsg': 'success', 'data': {'guest': {'9999': 0}, 'detail': {'guest': {'9999': {'retcode': 0, 'retmsg': 'ok'}}}}}
    with pytest.raises(FlowError, match='host 10000: this party is missing'):
        check_party_results('/model/migrate', body, [('guest', 9999), ('host', 10000)])


def test_party_results_without_expected_list_skip_non_role_keys():
    body = fixture_json('g4/deploy_success')
    results = check_party_results('/model/deploy', body, None)
    assert [(r['role'], r['party_id']) for r in results] == [('arbiter', '10000'), ('guest', '9999'), ('host', '10000')]


def test_overall_failure_without_party_detail():
    with pytest.raises(FlowError) as info:
        check_party_results('/model/load', {'retcode': 101, 'retmsg': 'failed', 'data': {}}, [])
    assert info.value.reason == FlowError.RETCODE


# -- model endpoints ----------------------------------------------------------------------------------

def test_query_not_found_is_empty_list():
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_not_found'))
    assert make_client(fake).query_models(model_id='m', model_version='v') == []
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    assert make_client(fake).query_models(model_id='m') == []


def test_query_sends_party_id_as_text_and_keeps_empty_version():
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_not_found'))
    make_client(fake).query_models(model_id='m', model_version='', role='guest', party_id=99)
    assert fake.calls_to('/v1/model/query')[0].json == {'model_id': 'm', 'model_version': '', 'role': 'guest', 'party_id': '99'}


def test_query_unsupported_on_1_4():
    fake = FakeFlow('1.4')
    with pytest.raises(FlowError) as info:
        make_client(fake).query_models(model_id='m', model_version='v')
    assert info.value.reason == FlowError.UNSUPPORTED
    assert '1.5.1' in info.value.message
    assert not fake.calls_to('/v1/model/query')


def test_import_fields_per_version(tmp_path):
    archive = make_archive(str(tmp_path / 'a.zip'))
    for version, expected in (('1.6.1', ['role', 'party_id', 'model_id', 'model_version', 'file']),
                              ('1.11', ['role', 'party_id', 'model_id', 'model_version', 'force_update', 'hash', 'file'])):
        fake = FakeFlow(version).on('/v1/model/import', fixture('g2/import_success'))
        make_client(fake).import_model(archive, 'guest', 99, 'm', 'v', force_update=True, sha256='ab' * 32)
        parts = fake.calls_to('/v1/model/import')[0].form()
        assert [p[0] for p in parts] == expected
        values = dict((p[0], p[2]) for p in parts)
        assert values['party_id'] == b'99'
        if version == '1.11':
            assert values['force_update'] == b'1' and values['hash'] == b'ab' * 32
        with open(archive, 'rb') as handle:
            assert parts[-1] == ('file', 'a.zip', handle.read())


# -- messages -----------------------------------------------------------------------------------------

def test_connection_problem_is_shortened():
    exc = requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='127.0.77.9', port=29999): Max retries exceeded with url: /v1/server/version/get "
        "(Caused by NewConnectionError(\"HTTPConnection(host='127.0.77.9', port=29999): Failed to establish a new "
        "connection: [Errno 111] Connection refused\"))")
    assert fc._connection_problem(exc) == '[Errno 111] Connection refused'
    assert fc._connection_problem(requests.exceptions.ConnectionError('reset by peer')) == 'reset by peer'


def test_hint_follows_a_retmsg_with_trailing_space():
    err = FlowError('FATE Flow /v1/model/bind failed with retcode 104: model x is not exist ', hint='Load it first.')
    assert err.message == 'FATE Flow /v1/model/bind failed with retcode 104: model x is not exist. Load it first.'


def test_party_hints_are_not_repeated():
    body = fixture_json('g2/load_not_deployed')
    with pytest.raises(FlowError) as info:
        check_party_results('/model/load', body, [('guest', '99'), ('host', '100')])
    assert info.value.message.count('fate.flow.model_deploy') == 1
    assert 'guest 99: Only deployed models' in info.value.message and 'host 100: Only deployed' in info.value.message


def test_missing_model_hint_names_execute_party_only_for_migrate():
    migrate = fc._hint_for("Can not found arbiter-10000#guest-9999#host-10000#model 1 model local cache")
    load = fc._hint_for("Model guest#9999#arbiter-10000#guest-9999#host-10000#model 1 not exists in model local "
                        "cache.")
    assert "execute_party" in migrate
    assert "execute_party" not in load and "import it" in load
