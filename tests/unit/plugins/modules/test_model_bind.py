# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.fate.flow.plugins.modules import model_bind
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    NEW_MODEL_ID,
    NEW_ROLES,
    UNIFY,
    FakeFlow,
    fixture,
    run_module,
)

ARGS = {'service_id': 'svc-credit', 'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': NEW_ROLES}


def _binds(fake):
    return fake.calls_to('/v1/model/bind')


def test_bind(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/bind', fixture('g4/bind_success'))
    result = run_module(model_bind, ARGS, fake, monkeypatch)
    assert result['changed'] is True and result['status'] == 'bound'
    assert result['retmsg'] == 'service id is svc-credit'
    assert _binds(fake)[0].json == {
        'service_id': 'svc-credit',
        'initiator': {'role': 'guest', 'party_id': '99'},
        'role': {'guest': ['99'], 'host': ['100'], 'arbiter': ['100']},
        'job_parameters': {'model_id': NEW_MODEL_ID, 'model_version': UNIFY},
    }


def test_second_run_binds_again(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/bind', fixture('g4/bind_success'))
    for _run in range(2):
        assert run_module(model_bind, ARGS, fake, monkeypatch)['changed'] is True
    assert len(_binds(fake)) == 2


def test_servings_are_passed(monkeypatch):
    fake = FakeFlow('1.8').on('/v1/model/bind', fixture('g4/bind_success'))
    run_module(model_bind, dict(ARGS, servings=['127.0.10.3:8000', '[::1]:8000']), fake, monkeypatch)
    assert _binds(fake)[0].json['servings'] == ['127.0.10.3:8000', '[::1]:8000']


def test_bind_before_load(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/bind', fixture('g4/bind_not_loaded_104'))
    result = run_module(model_bind, ARGS, fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 104
    assert 'load the model first' in result['msg']
    assert result['retmsg'].startswith('model 20200901_0001_guest#99#')


@pytest.mark.parametrize('name, text', [
    ('g3/bind_no_servings', 'service_conf.yaml'),
    ('g4/bind_serving_error_110', 'serviceId is illegal'),
])
def test_other_bind_errors(monkeypatch, name, text):
    fake = FakeFlow('1.8').on('/v1/model/bind', fixture(name))
    result = run_module(model_bind, ARGS, fake, monkeypatch)
    assert result['failed'] and text in result['msg']


@pytest.mark.parametrize('service_id, message', [
    ('', 'must not be empty'), ('   ', 'must not be empty'), ('svc:1', 'contains :'), ('a/b', 'contains /'),
    ('a?b&c', 'contains ? &'),
])
def test_service_id_validated_like_serving(monkeypatch, service_id, message):
    fake = FakeFlow('1.11')
    result = run_module(model_bind, dict(ARGS, service_id=service_id), fake, monkeypatch)
    assert result['failed'] and message in result['msg'] and fake.calls == []


def test_bad_servings(monkeypatch):
    fake = FakeFlow('1.11')
    result = run_module(model_bind, dict(ARGS, servings=['http://x:8000']), fake, monkeypatch)
    assert result['failed'] and 'host:port' in result['msg'] and fake.calls == []


def test_check_mode(monkeypatch):
    fake = FakeFlow('1.11')
    result = run_module(model_bind, ARGS, fake, monkeypatch, check_mode=True)
    assert result['changed'] is True and result['status'] == 'would_bind' and _binds(fake) == []


def test_unsupported_flow_refused_in_check_mode_too(monkeypatch):
    result = run_module(model_bind, ARGS, FakeFlow('2.0'), monkeypatch, check_mode=True)
    assert result['failed'] and '2.x' in result['msg']
