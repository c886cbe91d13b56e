# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.fate.flow.plugins.modules import model_load
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    NEW_MODEL_ID,
    NEW_ROLES,
    UNIFY,
    FakeFlow,
    fixture,
    json_reply,
    run_module,
)

ARGS = {'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': NEW_ROLES, 'flow_url': 'http://127.0.10.3:9380'}
STR_ROLES = {'guest': ['99'], 'host': ['100'], 'arbiter': ['100']}


def _loads(fake):
    return fake.calls_to('/v1/model/load')


def test_load_on_1_11_sends_string_ids_and_no_work_mode(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/load', fixture('g4/load_success'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['status'] == 'loaded'
    assert result['job_id'] == '202211091200000000002'
    assert _loads(fake)[0].json == {
        'initiator': {'role': 'guest', 'party_id': '99'},
        'role': STR_ROLES,
        'job_parameters': {'model_id': NEW_MODEL_ID, 'model_version': UNIFY},
    }
    assert result['parties'] == [
        {'role': 'guest', 'party_id': '99', 'retcode': 0, 'retmsg': 'success'},
        {'role': 'host', 'party_id': '100', 'retcode': 0, 'retmsg': 'success'},
    ]


@pytest.mark.parametrize('extra, work_mode', [({}, 1), ({'federated_mode': 'SINGLE'}, 0), ({'work_mode': 0}, 0)])
def test_load_on_1_6_sends_work_mode(monkeypatch, extra, work_mode):
    fake = FakeFlow('1.6.1').on('/v1/model/load', fixture('g2/load_success'))
    run_module(model_load, dict(ARGS, **extra), fake, monkeypatch)
    sent = _loads(fake)[0].json['job_parameters']
    assert sent['work_mode'] == work_mode
    assert sent.get('federated_mode') == extra.get('federated_mode')


def test_extra_job_parameters(monkeypatch):
    fake = FakeFlow('1.8').on('/v1/model/load', fixture('g4/load_success'))
    extra = {'use_transfer_url_on_serving': True, 'work_mode': 1, 'model_version': 'ignored'}
    run_module(model_load, dict(ARGS, job_parameters=extra), fake, monkeypatch)
    expected = {'use_transfer_url_on_serving': True, 'model_id': NEW_MODEL_ID, 'model_version': UNIFY}
    assert _loads(fake)[0].json['job_parameters'] == expected


def test_int_ids_become_strings_for_1_7_0(monkeypatch):
    fake = FakeFlow('1.7.0').on('/v1/model/load', fixture('g4/load_success'))
    run_module(model_load, dict(ARGS, initiator={'role': 'guest', 'party_id': 99}), fake, monkeypatch)
    assert _loads(fake)[0].json['role'] == STR_ROLES


def test_failed_party_fails_the_task(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/load', fixture('g4/load_party_failed'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 101 and result['reason'] == 'party'
    assert 'host 100: Please configure servings address' in result['msg']
    assert 'servings.hosts' in result['msg']


def test_serving_error_keeps_serving_code(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/load', fixture('g4/load_serving_init_error'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    guest = [p for p in result['parties'] if p['role'] == 'guest'][0]
    assert guest['retcode'] == 123 and 'model initialization error' in result['msg']


def test_unreached_party(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/load', fixture('g4/load_transport_failure'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert result['failed'] and 'host 100: no answer from this party' in result['msg']


def test_not_deployed_says_deploy(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/load', fixture('g2/load_not_deployed'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert result['failed'] and 'fate.flow.model_deploy' in result['msg']


def test_check_mode_loads_nothing(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_imported_guest'), fixture('g2/query_not_found'))
    result = run_module(model_load, ARGS, fake, monkeypatch, check_mode=True)
    assert result['changed'] is True and result['status'] == 'would_load' and _loads(fake) == []
    assert result['loaded_times'] == {'guest#99': 0}


def test_check_mode_model_missing_on_initiator(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_load, ARGS, fake, monkeypatch, check_mode=True)
    assert result['failed'] and 'is not on the initiator guest 99' in result['msg']


def test_check_mode_refuses_undeployed_parent(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'), fixture('g4/query_not_found'))
    args = dict(ARGS, role={'guest': [9999], 'host': [10000]}, model_version='202006171904247702041')
    result = run_module(model_load, args, fake, monkeypatch, check_mode=True)
    assert result['failed'] and 'not deployed' in result['msg']


def test_check_mode_on_1_4_cannot_query(monkeypatch):
    fake = FakeFlow('1.4')
    result = run_module(model_load, ARGS, fake, monkeypatch, check_mode=True)
    assert result['changed'] is True and _loads(fake) == []


def test_skip_if_loaded(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_loaded_guest'), fixture('g2/query_not_found'))
    result = run_module(model_load, dict(ARGS, skip_if_loaded=True), fake, monkeypatch)
    assert result['changed'] is False and result['status'] == 'already_loaded' and _loads(fake) == []
    assert result['loaded_times'] == {'guest#99': 2}


def test_skip_if_loaded_loads_when_never_loaded(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_imported_guest'), fixture('g2/query_not_found'))
    fake.on('/v1/model/load', fixture('g2/load_success'))
    result = run_module(model_load, dict(ARGS, skip_if_loaded=True), fake, monkeypatch)
    assert result['changed'] is True and len(_loads(fake)) == 1


def test_skip_if_loaded_needs_query(monkeypatch):
    result = run_module(model_load, dict(ARGS, skip_if_loaded=True), FakeFlow('1.5.0'), monkeypatch)
    assert result['failed'] and '1.5.1' in result['msg']


@pytest.mark.parametrize('changes, message', [
    ({'role': {'host': [100]}}, 'role has no guest'),
    ({'initiator': {'role': 'guest', 'party_id': 98}}, 'not one of the parties'),
    ({'role': {'guest': ['x']}}, 'not an integer'),
])
def test_bad_maps_fail_before_contacting_flow(monkeypatch, changes, message):
    fake = FakeFlow('1.11')
    result = run_module(model_load, dict(ARGS, **changes), fake, monkeypatch)
    assert result['failed'] and message in result['msg'] and fake.calls == []


def test_work_mode_missing_answer_is_explained(monkeypatch):
    # What 1.5/1.6 answer when neither work_mode nor federated_mode arrives (the module always sends one).
    fake = FakeFlow('1.6.1').on('/v1/model/load', fixture('g2/load_work_mode_missing'))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert result['failed'] and result['retmsg'] == "'work_mode'"


def test_arbiter_not_expected(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/load', json_reply({
        'data': {'guest': {'99': 0}, 'host': {'100': 0},
                 'detail': {'guest': {'99': {'retcode': 0, 'retmsg': 'success'}}, 'host': {'100': {'retcode': 0, 'retmsg': 'success'}}}},
        'jobId': '1', 'retcode': 0, 'retmsg': 'success'}))
    result = run_module(model_load, ARGS, fake, monkeypatch)
    assert [p['role'] for p in result['parties']] == ['guest', 'host']
