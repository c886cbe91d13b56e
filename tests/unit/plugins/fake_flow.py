# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test helpers: a fake FATE Flow behind a requests transport adapter, recorded replies,
model archives, and a runner for the collection's modules."""

from __future__ import annotations

import json
import os
import zipfile

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fate.flow.plugins.module_utils import _flow_client

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures')
REPLIES = os.path.join(FIXTURES, 'replies')

NEW_MODEL_ID = 'arbiter-100#guest-99#host-100#model'
OLD_MODEL_ID = 'arbiter-10000#guest-9999#host-10000#model'
OLD_ROLES = {'guest': [9999], 'host': [10000], 'arbiter': [10000]}
NEW_ROLES = {'guest': [99], 'host': [100], 'arbiter': [100]}
DEPLOYED_VERSION = '202006171911346893310'
TRAINED_VERSION = '202006171904247702041'
UNIFY = '20200901_0001'


# ---------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------

class Reply(object):
    def __init__(self, status=200, body=b'', headers=None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def refused(url='http://127.0.10.1:9380/v1/'):
    """What requests raises when nothing listens: the request was never sent."""
    return requests.exceptions.ConnectionError(MaxRetryError(
        None, url, NewConnectionError(None, 'Failed to establish a new connection: [Errno 111] Connection refused')))


def aborted():
    """What requests raises when the connection breaks after the request went out."""
    return requests.exceptions.ConnectionError(
        ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer')))


def json_reply(body, status=200):
    return Reply(status, json.dumps(body).encode('utf-8'), {'Content-Type': 'application/json'})


def fixture(name, **subs):
    """A recorded reply from tests/unit/fixtures/replies/<name>.json; ``@KEY@`` placeholders replaced by subs."""
    with open(os.path.join(REPLIES, name + '.json')) as handle:
        text = handle.read()
    for key, value in subs.items():
        text = text.replace('@%s@' % key.upper(), value)
    data = json.loads(text)
    if 'json' in data:
        body = json.dumps(data['json']).encode('utf-8')
    else:
        body = data['text'].encode('utf-8')
    return Reply(data['status'], body, data.get('headers'))


def fixture_json(name, **subs):
    return json.loads(fixture(name, **subs).body.decode('utf-8'))


# What each FATE version answers on its version endpoints.
VERSION_REPLIES = {
    '1.4': {'/v1/server/version/get': 'common/html_404', '/v1/version/get': 'l/version_get'},
    '1.5.0': {'/v1/server/version/get': 'common/html_404', '/v1/version/get': 'g0/version_get'},
    '1.6.0': {'/v1/server/version/get': 'common/html_404', '/v1/version/get': 'g1/version_get'},
    '1.5.3': {'/v1/server/version/get': 'common/html_404', '/v1/version/get': 'g2/version_get_1_5_3'},
    '1.6.1': {'/v1/server/version/get': 'common/html_404', '/v1/version/get': 'g2/version_get'},
    '1.7.0': {'/v1/server/version/get': 'g3/server_version_get_1_7_0', '/v1/version/get': 'g3/version_get'},
    '1.8': {'/v1/server/version/get': 'g3/server_version_get', '/v1/version/get': 'g3/version_get'},
    '1.9': {'/v1/server/version/get': 'g4/server_version_get_1_9', '/v1/version/get': 'g3/version_get'},
    '1.11': {'/v1/server/version/get': 'g4/server_version_get', '/v1/version/get': 'g4/not_found_path'},
    '2.0': {'/v1/server/version/get': 'v2/not_found_path', '/v1/version/get': 'v2/not_found_path'},
}
UNKNOWN_PATH = {'1.4': 'common/html_404', '1.5.0': 'common/html_404', '1.6.0': 'common/html_404',
                '1.5.3': 'common/html_404', '1.6.1': 'common/html_404', '1.7.0': 'common/html_404',
                '1.8': 'common/html_404', '1.9': 'g4/not_found_path', '1.11': 'g4/not_found_path',
                '2.0': 'v2/not_found_path'}


class Call(object):
    def __init__(self, method, url, path, headers, body):
        self.method = method
        self.url = url
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body.decode('utf-8'))

    def form(self):
        """The multipart parts as ``[(name, filename, bytes)]``."""
        content_type = self.headers['Content-Type']
        boundary = content_type.split('boundary=')[1].encode('ascii')
        parts = []
        for chunk in self.body.split(b'--' + boundary)[1:]:
            if chunk.startswith(b'--'):
                break
            head, _sep, value = chunk[2:].partition(b'\r\n\r\n')
            value = value[:-2]
            disposition = [line for line in head.split(b'\r\n') if line.lower().startswith(b'content-disposition')][0]
            attrs = dict(item.strip().split(b'=', 1) for item in disposition.split(b';')[1:])
            name = attrs[b'name'].strip(b'"').decode('utf-8')
            filename = attrs[b'filename'].strip(b'"').decode('utf-8') if b'filename' in attrs else None
            parts.append((name, filename, value))
        return parts


class FakeFlow(BaseAdapter):
    """A scripted FATE Flow: ``on(path, replies...)``; the last reply of a path repeats."""

    def __init__(self, version=None):
        super(FakeFlow, self).__init__()
        self.routes = {}
        self.calls = []
        self.sleeps = []
        self.unknown = fixture('common/html_404')
        if version:
            self.use_version(version)

    def use_version(self, version):
        for path, name in VERSION_REPLIES[version].items():
            self.on(path, fixture(name))
        self.unknown = fixture(UNKNOWN_PATH[version])
        if version == '2.0':
            self.on('/v2/server/fateflow', fixture('v2/server_fateflow'), method='GET')
        return self

    def on(self, path, *replies, **kwargs):
        self.routes[(kwargs.get('method', 'POST'), path)] = list(replies)
        return self

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        body = request.body
        if body is None:
            body = b''
        elif not isinstance(body, (bytes, str)):
            body = b''.join(body)
        elif isinstance(body, str):
            body = body.encode('utf-8')
        path = request.path_url
        self.calls.append(Call(request.method, request.url, path, dict(request.headers), body))
        queue = self.routes.get((request.method, path))
        if not queue:
            reply = self.unknown
        elif len(queue) > 1:
            reply = queue.pop(0)
        else:
            reply = queue[0]
        if isinstance(reply, BaseException):
            raise reply
        response = requests.Response()
        response.status_code = reply.status
        response._content = reply.body
        response.headers = CaseInsensitiveDict(reply.headers)
        response.url = request.url
        response.request = request
        response.encoding = 'utf-8'
        return response

    def close(self):
        pass

    def calls_to(self, path):
        return [call for call in self.calls if call.path == path]

    def model_calls(self):
        """Calls other than version detection."""
        return [call for call in self.calls if 'version/get' not in call.path]


# ---------------------------------------------------------------------------
# Module runner
# ---------------------------------------------------------------------------

class ModuleExit(Exception):
    def __init__(self, result):
        super(ModuleExit, self).__init__(result)
        self.result = result


class ModuleFail(ModuleExit):
    pass


def run_module(module, args, fake, monkeypatch, check_mode=False, diff=False):
    """Run a module's main() against ``fake``; returns the result dict (``failed`` set on failure)."""
    args = dict(args)
    args.setdefault('flow_url', 'http://127.0.10.1:9380')
    if args['flow_url'] is None:  # leave it out, to exercise the FATE_FLOW_URL fallback
        del args['flow_url']
    args.setdefault('retry_delay', 0)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
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
    monkeypatch.setattr(_flow_client.FlowClient, '_new_session', new_session)
    monkeypatch.setattr(_flow_client.time, 'sleep', fake.sleeps.append)
    with patch_module_args(args):
        try:
            module.main()
        except ModuleExit as exc:
            return exc.result
    raise AssertionError('the module returned without exit_json or fail_json')


# ---------------------------------------------------------------------------
# Protobuf encoding (tests only) and archives
# ---------------------------------------------------------------------------

def _varint(value):
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


PIPELINE_NUMBERS = {'inference_dsl': 1, 'train_dsl': 2, 'train_runtime_conf': 3, 'fate_version': 4, 'model_id': 5,
                    'model_version': 6, 'parent': 7, 'loaded_times': 8, 'roles': 9, 'work_mode': 10,
                    'initiator_role': 11, 'initiator_party_id': 12, 'runtime_conf_on_party': 13, 'parent_info': 14}


def encode_pipeline(fields):
    """Serialize a Pipeline message from a dict (dict/list values become JSON bytes)."""
    out = bytearray()
    for name, value in fields.items():
        number = PIPELINE_NUMBERS[name]
        if isinstance(value, bool) or isinstance(value, int):
            if value:
                out += _varint(number << 3) + _varint(int(value))
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        if isinstance(value, str):
            value = value.encode('utf-8')
        out += _varint(number << 3 | 2) + _varint(len(value)) + value
    return bytes(out)


def guide_pipeline(roles=None, model_id=NEW_MODEL_ID, version=UNIFY, fate_version='1.6.1', old_roles=None, **extra):
    roles = roles or NEW_ROLES
    fields = dict(
        inference_dsl={'components': {'reader_0': {'module': 'Reader'}, 'hetero_lr_0': {'module': 'HeteroLR'}}},
        train_dsl={'components': {'reader_0': {'module': 'Reader', 'output': {'data': ['data']}},
                                  'hetero_lr_0': {'module': 'HeteroLR'}}},
        train_runtime_conf={'dsl_version': 2, 'initiator': {'role': 'guest', 'party_id': roles['guest'][0]},
                            'role': roles, 'job_parameters': {'common': {'model_id': model_id, 'model_version': version}}},
        fate_version=fate_version, model_id=model_id, model_version=version,
        roles=old_roles or roles, initiator_role='guest', initiator_party_id=roles['guest'][0],
    )
    fields.update(extra)
    return fields


def make_archive(path, pipeline=None, entries=None, skip=()):
    """Write a model archive: define_meta.yaml, the Pipeline, a component model, plus ``entries``."""
    pipeline = guide_pipeline() if pipeline is None else pipeline
    content = {
        'define/define_meta.yaml': b'component_define:\n  pipeline: {module_name: Pipeline}\n'
                                   b'model_proto:\n  pipeline: {pipeline: {Pipeline: Pipeline}}\n',
        'variables/data/pipeline/pipeline/Pipeline': encode_pipeline(pipeline),
        'variables/data/hetero_lr_0/model/HeteroLogisticRegressionParam': b'\x08\x0a',
    }
    content.update(entries or {})
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('define/', b'')
        for name, data in content.items():
            if name not in skip:
                archive.writestr(name, data)
    return path
