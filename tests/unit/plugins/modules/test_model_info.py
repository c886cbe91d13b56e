# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.fate.flow.plugins.modules import model_info
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    NEW_MODEL_ID,
    UNIFY,
    FakeFlow,
    fixture,
    run_module,
)

ARGS = {'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': 'guest', 'party_id': 99}


def test_found_rows_are_cleaned(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_imported_guest'))
    result = run_module(model_info, ARGS, fake, monkeypatch)
    assert result['changed'] is False and result['exists'] is True and result['count'] == 1
    model = result['models'][0]
    assert model['model_id'] == NEW_MODEL_ID and model['party_id'] == '99' and model['imported'] == 1
    assert model['train_runtime_conf']['role']['guest'] == [99]
    assert 'f_model_id' in result['rows'][0] and 'model_id' not in result['rows'][0]
    expected = {'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': 'guest', 'party_id': '99'}
    assert fake.calls_to('/v1/model/query')[0].json == expected


def test_not_found(monkeypatch):
    for version, name in (('1.6.1', 'g2/query_not_found'), ('1.11', 'g4/query_not_found')):
        fake = FakeFlow(version).on('/v1/model/query', fixture(name))
        result = run_module(model_info, ARGS, fake, monkeypatch, check_mode=True)
        assert not result.get('failed')
        assert result['exists'] is False and result['models'] == [] and result['count'] == 0


def test_fields_are_query_filters(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_migrated_guest'))
    run_module(model_info, {'model_id': NEW_MODEL_ID, 'fields': ['model_id', 'loaded_times']}, fake, monkeypatch)
    assert fake.calls_to('/v1/model/query')[0].json == {'model_id': NEW_MODEL_ID, 'query_filters': ['model_id', 'loaded_times']}


def test_1_4_has_no_query(monkeypatch):
    fake = FakeFlow('1.4')
    result = run_module(model_info, ARGS, fake, monkeypatch)
    assert result['failed'] and result['reason'] == 'unsupported'
    assert '1.4.5' in result['msg']
    assert not fake.calls_to('/v1/model/query')


def test_old_flow_needs_model_version(monkeypatch):
    fake = FakeFlow('1.6.0').on('/v1/model/query', fixture('g1/query_missing_model_version'))
    result = run_module(model_info, {'model_id': NEW_MODEL_ID}, fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 100
    assert 'needs model_version' in result['msg']


def test_bad_party_id(monkeypatch):
    fake = FakeFlow('1.11')
    result = run_module(model_info, dict(ARGS, party_id='ninety'), fake, monkeypatch)
    assert result['failed'] and 'not an integer' in result['msg']
    assert fake.calls == []
