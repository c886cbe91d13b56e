# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hostile values in every model name and connection option of the FATE Flow modules (issue #7, fault 15).

Names FATE Flow turns into file names (model ids, versions, unify_model_version, service ids) are refused with a
message naming the option when they could escape FATE's directories or break a file name ('/', '..', control
characters, more than 255 bytes), before anything is sent; shell metacharacters, quotes, spaces and '#' are sent
literally (the requests show them byte for byte).
"""

from __future__ import annotations

import pytest

from ansible_collections.fate.flow.plugins.modules import (
    flow_info,
    model_bind,
    model_deploy,
    model_import,
    model_info,
    model_load,
    model_migrate,
)
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    DEPLOYED_VERSION,
    NEW_MODEL_ID,
    NEW_ROLES,
    OLD_MODEL_ID,
    OLD_ROLES,
    UNIFY,
    FakeFlow,
    fixture,
    fixture_json,
    guide_pipeline,
    json_reply,
    make_archive,
    run_module,
)

LITERAL = "v 1;$(cd;touch fate_marker)`id`'\"#x"
REFUSED = [('../../etc', "contains '/'"), ('a\nb', 'control character'), ('x' * 300, 'is 300 bytes long'),
           (' 1', 'leading or trailing whitespace'), ('', 'is empty')]

MIGRATE = {'model_id': OLD_MODEL_ID, 'model_version': DEPLOYED_VERSION, 'role': OLD_ROLES, 'migrate_role': NEW_ROLES,
           'unify_model_version': UNIFY, 'federated_mode': 'SINGLE', 'execute_party': {'guest': [9999]}}
LOAD = {'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': NEW_ROLES}
CASES = [
    (model_migrate, MIGRATE, ('model_id', 'model_version', 'unify_model_version')),
    (model_load, LOAD, ('model_id', 'model_version')),
    (model_bind, dict(LOAD, service_id='svc'), ('model_id', 'model_version', 'service_id')),
    (model_deploy, {'model_id': OLD_MODEL_ID, 'model_version': DEPLOYED_VERSION}, ('model_id', 'model_version')),
    (model_info, {'model_id': OLD_MODEL_ID}, ('model_id', 'model_version')),
]


@pytest.mark.parametrize('module, args, option', [
    pytest.param(module, args, option, id='%s-%s' % (module.__name__.rsplit('.', 1)[-1], option))
    for module, args, options in CASES for option in options])
@pytest.mark.parametrize('value, problem', REFUSED, ids=['slash', 'newline', 'long', 'space', 'empty'])
def test_names_that_break_file_names_are_refused_before_sending(monkeypatch, module, args, option, value, problem):
    if option == 'service_id':
        # model_bind strips the service id and names FATE-Serving's own forbidden characters first.
        problem = {' 1': None, '': 'must not be empty', '../../etc': 'which FATE-Serving refuses'}.get(value, problem)
        if problem is None:
            return
    fake = FakeFlow('1.11')
    result = run_module(module, dict(args, **{option: value}), fake, monkeypatch)
    assert result['failed'], result
    assert result['msg'].startswith(option + ' ') and problem in result['msg'], result['msg']
    assert len(result['msg']) < 300
    assert fake.model_calls() == [] and fake.calls == [], 'nothing may reach FATE Flow'


def test_migrate_sends_a_hostile_but_valid_version_literally(monkeypatch):
    archive = 'guest#99#%s_%s.zip' % (NEW_MODEL_ID, LITERAL)
    reply = json_reply({'retcode': 0, 'retmsg': 'success', 'jobId': '1', 'data': {
        'guest': {'9999': 0}, 'detail': {'guest': {'9999': {
            'retcode': 0, 'retmsg': "Model files can be found at '/fate/temp/%s'." % archive}}}}})
    fake = FakeFlow('1.6.1').on('/v1/model/migrate', reply)
    result = run_module(model_migrate, dict(MIGRATE, unify_model_version=LITERAL), fake, monkeypatch)
    assert not result.get('failed'), result
    assert fake.calls_to('/v1/model/migrate')[0].json['unify_model_version'] == LITERAL
    assert result['parties'][0]['archive_name'] == archive


def test_migrate_refuses_an_archive_name_longer_than_a_file_name(monkeypatch):
    fake = FakeFlow('1.6.1')
    result = run_module(model_migrate, dict(MIGRATE, unify_model_version='v' * 230), fake, monkeypatch)
    assert result['failed']
    assert result['msg'].startswith("the archive name 'guest#99#arbiter-100#guest-99#host-100#model_vvv")
    assert 'more than the 255 a file name may have: use a shorter model id or version' in result['msg']
    assert fake.model_calls() == []


def test_import_refuses_a_hostile_version_stored_in_the_archive(monkeypatch, tmp_path):
    path = make_archive(str(tmp_path / 'a.zip'), guide_pipeline(version='../../../../tmp/x'))
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_import, {'archive': path, 'role': 'guest', 'party_id': 99}, fake, monkeypatch)
    assert result['failed']
    assert result['msg'].startswith("the model version stored in the archive '../../../../tmp/x' contains '/'")
    assert fake.calls_to('/v1/model/import') == []


def test_import_sends_hostile_but_valid_names_literally(monkeypatch, tmp_path):
    path = make_archive(str(tmp_path / ("it's $(x) #1.zip")), guide_pipeline())
    stored = fixture_json('g4/query_imported_guest', sha256='')
    stored['data'][0].update(f_model_id=LITERAL, f_model_version=LITERAL)
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'), json_reply(stored)).on(
        '/v1/model/import', json_reply({'retcode': 0, 'retmsg': 'success', 'data': {}}))
    result = run_module(model_import, {'archive': path, 'role': 'guest', 'party_id': '99', 'model_id': LITERAL,
                                       'model_version': LITERAL}, fake, monkeypatch)
    assert result['status'] == 'imported' and result['verified'] is True, result
    body = fake.calls_to('/v1/model/import')[0].body
    assert LITERAL.encode('utf-8') in body
    # the verifying query asks for the same literal names
    assert LITERAL in fake.calls_to('/v1/model/query')[-1].json['model_id']


@pytest.mark.parametrize('option, value, message', [
    ('timeout', -1, 'timeout must be between 1 and 86400, got -1'),
    ('timeout', 0, 'timeout must be between 1 and 86400, got 0'),
    ('retries', -3, 'retries must be between 0 and 100, got -3'),
    ('retry_delay', 1e9, 'retry_delay must be between 0 and 3600'),
    ('flow_url', 'http://127.0.0.1:9380;$(touch x)', 'flow_url must be an http:// or https:// URL'),
    ('flow_url', 'http://127.0.0.1:93a0', 'flow_url must be an http:// or https:// URL'),
    ('flow_url', 'http://host name:9380', 'flow_url must be an http:// or https:// URL'),
])
def test_connection_options_out_of_range(monkeypatch, option, value, message):
    fake = FakeFlow('1.11')
    result = run_module(flow_info, {option: value}, fake, monkeypatch)
    assert result['failed'] and result['msg'].startswith(message), result['msg']
    assert fake.calls == []


@pytest.mark.parametrize('value', ['9' * 30, '99 ; id', '$(id)', [99], {'a': 1}])
def test_party_ids_that_are_not_party_ids(monkeypatch, value, tmp_path):
    path = make_archive(str(tmp_path / 'a.zip'), guide_pipeline())
    fake = FakeFlow('1.11')
    result = run_module(model_import, {'archive': path, 'role': 'guest', 'party_id': value}, fake, monkeypatch)
    assert result['failed'] and 'is not an integer party id' in result['msg'], result['msg']
    assert fake.calls_to('/v1/model/import') == []
