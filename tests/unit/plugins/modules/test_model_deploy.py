# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

from ansible_collections.fate.flow.plugins.modules import model_deploy
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    DEPLOYED_VERSION,
    OLD_MODEL_ID,
    TRAINED_VERSION,
    FakeFlow,
    fixture,
    run_module,
)

ARGS = {'model_id': OLD_MODEL_ID, 'model_version': TRAINED_VERSION}


def _deploys(fake):
    return fake.calls_to('/v1/model/deploy')


def test_deploy_parent_on_1_11(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'), fixture('g4/query_trained_parent'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_success'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['status'] == 'deployed'
    assert result['model_version'] == '202211091200000000001' and result['parent_model_version'] == TRAINED_VERSION
    assert _deploys(fake)[0].json == ARGS
    assert len(result['parties']) == 3
    # children were looked for by model id only
    assert fake.calls_to('/v1/model/query')[1].json == {'model_id': OLD_MODEL_ID}


def test_existing_child_is_reused(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'), fixture('g4/query_model_versions'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch)
    assert result['changed'] is False and result['status'] == 'already_deployed'
    assert result['model_version'] == DEPLOYED_VERSION
    assert _deploys(fake) == []


def test_child_with_other_components_is_not_reused(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'), fixture('g4/query_model_versions'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_success'))
    result = run_module(model_deploy, dict(ARGS, cpn_list=['reader_0', 'data_transform_0', 'hetero_lr_0']), fake, monkeypatch)
    assert result['changed'] is True
    assert _deploys(fake)[0].json['cpn_list'] == ['reader_0', 'data_transform_0', 'hetero_lr_0']


def test_child_with_same_components_is_reused(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'), fixture('g4/query_model_versions'))
    result = run_module(model_deploy, dict(ARGS, cpn_list=['hetero_lr_0', 'reader_0']), fake, monkeypatch)
    assert result['changed'] is False


def test_force_deploys_again(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_success'))
    result = run_module(model_deploy, dict(ARGS, force=True), fake, monkeypatch)
    assert result['changed'] is True and len(fake.calls_to('/v1/model/query')) == 1


def test_predict_dsl_sent_as_json_text(monkeypatch):
    dsl = {'components': {'reader_0': {'module': 'Reader'}}}
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_success'))
    run_module(model_deploy, dict(ARGS, predict_dsl=dsl, components_checkpoint={'hetero_lr_0': {'step_index': 5}}), fake, monkeypatch)
    sent = _deploys(fake)[0].json
    assert json.loads(sent['dsl']) == dsl and isinstance(sent['dsl'], str)
    assert sent['components_checkpoint'] == {'hetero_lr_0': {'step_index': 5}}


def test_given_version_is_already_a_child(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_deployed_child'))
    result = run_module(model_deploy, dict(ARGS, model_version=DEPLOYED_VERSION), fake, monkeypatch)
    assert result['changed'] is False and result['status'] == 'is_deployed_child'
    assert result['model_version'] == DEPLOYED_VERSION and result['parent_model_version'] == TRAINED_VERSION


def test_1_6_lists_children_with_an_empty_version(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_trained_parent'), fixture('g2/query_not_found'))
    fake.on('/v1/model/deploy', fixture('g2/deploy_success'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch)
    assert fake.calls_to('/v1/model/query')[1].json == {'model_id': OLD_MODEL_ID, 'model_version': ''}
    assert result['model_version'] == '202011091200000000001'


def test_listing_failure_warns_and_deploys(monkeypatch):
    fake = FakeFlow('1.6.0').on('/v1/model/query', fixture('g2/query_trained_parent'), fixture('g1/query_missing_model_version'))
    fake.on('/v1/model/deploy', fixture('g2/deploy_success'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch)
    assert result['changed'] is True and 'Could not list the deployed children' in result['warnings'][0]


def test_check_mode(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch, check_mode=True)
    assert result['changed'] is True and result['status'] == 'would_deploy' and result['model_version'] is None
    assert _deploys(fake) == []


def test_unknown_model(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_deploy, ARGS, fake, monkeypatch)
    assert result['failed'] and 'is not known to FATE Flow' in result['msg'] and _deploys(fake) == []


def test_deploy_404_from_1_9_plus(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_not_found_404'))
    result = run_module(model_deploy, dict(ARGS, force=True), fake, monkeypatch)
    assert result['failed'] and result['http_status'] == 404 and result['reason'] == 'not_found'


def test_party_failure(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_trained_parent'))
    fake.on('/v1/model/deploy', fixture('g4/deploy_party_failed'))
    result = run_module(model_deploy, dict(ARGS, force=True), fake, monkeypatch)
    assert result['failed'] and 'host 10000: FileNotFoundError' in result['msg']


def test_no_deploy_before_1_5_1(monkeypatch):
    for version in ('1.4', '1.5.0'):
        fake = FakeFlow(version)
        result = run_module(model_deploy, ARGS, fake, monkeypatch)
        assert result['changed'] is False and result['status'] == 'not_needed'
        assert result['model_version'] == TRAINED_VERSION and 'no deploy API' in result['warnings'][0]
        assert fake.model_calls() == []
