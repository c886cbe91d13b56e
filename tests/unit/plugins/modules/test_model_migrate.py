# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.fate.flow.plugins.modules import model_migrate
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

BASE = {
    'model_id': OLD_MODEL_ID,
    'model_version': DEPLOYED_VERSION,
    'role': OLD_ROLES,
    'migrate_role': NEW_ROLES,
    'unify_model_version': UNIFY,
}
GUEST_ARCHIVE = 'guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip'


def _migrate_calls(fake):
    return fake.calls_to('/v1/model/migrate')


# -- local validation: nothing is sent ------------------------------------------------------------

@pytest.mark.parametrize('changes, message', [
    ({'migrate_role': OLD_ROLES}, 'no need to migrate'),
    ({'migrate_role': {'guest': ['9999'], 'host': ['10000'], 'arbiter': ['10000']}}, 'no need to migrate'),
    ({'migrate_role': {'guest': [99], 'host': [100]}}, 'same roles'),
    ({'migrate_role': {'guest': [99, 98], 'host': [100], 'arbiter': [100]}}, 'same number of parties'),
    ({'role': {'guest': [9999], 'arbiter': [10000]}, 'migrate_role': {'guest': [99], 'arbiter': [100]}}, 'include host'),
    ({'migrate_role': {'guest': ['g99'], 'host': [100], 'arbiter': [100]}}, 'not an integer'),
    ({'execute_party': {'guest': [99]}}, 'original'),
    ({'migrate_initiator': {'role': 'guest', 'party_id': 9999}}, 'not one of the parties'),
])
def test_role_maps_checked_before_sending(monkeypatch, changes, message):
    fake = FakeFlow('1.11')
    result = run_module(model_migrate, dict(BASE, **changes), fake, monkeypatch)
    assert result['failed'] and message in result['msg']
    assert fake.calls == []  # not even version detection


# -- success ------------------------------------------------------------------------------------------

def test_single_mode_success_on_1_6(monkeypatch, tmp_path):
    archive_dir = tmp_path / 'temp' / 'fate_flow'
    archive_dir.mkdir(parents=True)
    fake = FakeFlow('1.6.1').on('/v1/model/migrate', fixture('g2/migrate_success_single', archive_dir=str(archive_dir)))
    args = dict(BASE, federated_mode='SINGLE', execute_party={'guest': ['9999']}, fate_home=str(tmp_path))
    original_send = fake.send

    def send(request, **kwargs):  # the archive appears when FATE Flow migrates
        response = original_send(request, **kwargs)
        if request.path_url == '/v1/model/migrate':
            path = archive_dir / GUEST_ARCHIVE
            make_archive(str(path))
            (archive_dir / (GUEST_ARCHIVE + '.sha1')).write_text(hashlib.sha1(path.read_bytes()).hexdigest())
        return response
    fake.send = send
    result = run_module(model_migrate, args, fake, monkeypatch)
    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['model_id'] == NEW_MODEL_ID and result['model_version'] == UNIFY
    assert result['job_id'] == '202111091127392613050'
    sent = _migrate_calls(fake)[0].json
    assert sent == {
        'job_parameters': {'federated_mode': 'SINGLE'},
        'role': OLD_ROLES, 'migrate_role': NEW_ROLES,
        'migrate_initiator': {'role': 'guest', 'party_id': 99},
        'execute_party': {'guest': [9999]},  # int, like role
        'model_id': OLD_MODEL_ID, 'model_version': DEPLOYED_VERSION, 'unify_model_version': UNIFY,
    }
    (party,) = result['parties']
    assert party['role'] == 'guest' and party['old_party_id'] == 9999 and party['new_party_id'] == 99
    assert party['party_model_id'] == 'guest#99#' + NEW_MODEL_ID
    assert party['archive_name'] == GUEST_ARCHIVE
    assert party['archive_path'] == str(archive_dir / GUEST_ARCHIVE)
    data = (archive_dir / GUEST_ARCHIVE).read_bytes()
    assert party['archive_sha256'] == hashlib.sha256(data).hexdigest()
    assert party['archive_sha1'] == hashlib.sha1(data).hexdigest()
    assert party['status'] == 'migrated'


def test_string_party_ids_are_sent_as_ints(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/migrate', fixture('g4/migrate_success_multiple', archive_dir='/srv/fate/fateflow/temp'))
    fake.on('/v1/model/query', fixture('g4/query_not_found'))
    args = dict(BASE, role={'guest': ['9999'], 'host': ['10000'], 'arbiter': ['10000']},
                migrate_role={'guest': ['99'], 'host': ['100'], 'arbiter': ['100']},
                migrate_initiator={'role': 'guest', 'party_id': '99'})
    result = run_module(model_migrate, args, fake, monkeypatch)
    assert not result.get('failed'), result
    sent = _migrate_calls(fake)[0].json
    assert sent['role'] == OLD_ROLES and sent['migrate_role'] == NEW_ROLES
    assert sent['execute_party'] == {'arbiter': [10000], 'guest': [9999], 'host': [10000]}
    assert sent['migrate_initiator'] == {'role': 'guest', 'party_id': 99}
    assert sent['job_parameters'] == {'federated_mode': 'MULTIPLE'}


def test_archive_path_comes_from_the_retmsg(monkeypatch):
    # No archive_dir or fate_home: the only place FATE names the archive is the per-party retmsg.
    fake = FakeFlow('1.11').on('/v1/model/migrate', fixture('g4/migrate_success_multiple', archive_dir='/srv/fate/fateflow/temp'))
    fake.on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    paths = dict((p['role'], p['archive_path']) for p in result['parties'])
    assert paths == {
        'arbiter': '/srv/fate/fateflow/temp/arbiter#100#%s_%s.zip' % (NEW_MODEL_ID, UNIFY),
        'guest': '/srv/fate/fateflow/temp/guest#99#%s_%s.zip' % (NEW_MODEL_ID, UNIFY),
        'host': '/srv/fate/fateflow/temp/host#100#%s_%s.zip' % (NEW_MODEL_ID, UNIFY),
    }
    assert all(p['archive_sha256'] is None for p in result['parties'])  # not readable here, not recorded


def test_sha256_from_the_1_9_plus_record(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/migrate', fixture('g4/migrate_success_multiple', archive_dir='/elsewhere'))
    # idempotency look-up: nothing yet; after the migration: the registered model row.
    # (parties in order arbiter, guest, host)
    replies = [fixture('g4/query_not_found')] * 4 + [fixture('g4/query_migrated_guest'), fixture('g4/query_not_found')]
    fake.on('/v1/model/query', *replies)
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    guest = [p for p in result['parties'] if p['role'] == 'guest'][0]
    assert guest['archive_sha256'].startswith('6a1c4fd1')


def test_without_unify_version_the_job_id_is_the_version(monkeypatch):
    fake = FakeFlow('1.6.1').on('/v1/model/migrate', fixture('g2/migrate_success_single', archive_dir='/x'))
    args = dict(BASE, execute_party={'guest': [9999]}, federated_mode='SINGLE')
    del args['unify_model_version']
    result = run_module(model_migrate, args, fake, monkeypatch)
    assert 'unify_model_version' not in _migrate_calls(fake)[0].json
    assert result['model_version'] == '202111091127392613050'
    assert result['parties'][0]['archive_name'] == 'guest#99#%s_202111091127392613050.zip' % NEW_MODEL_ID


# -- failures hidden in "success" -------------------------------------------------------------------

def test_party_failure_inside_success_fails_the_task(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/migrate', fixture('g4/migrate_party_failed', archive_dir='/x'))
    fake.on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed']
    assert result['retcode'] == 0 and result['retmsg'] == 'success' and result['reason'] == 'party'
    assert 'host 10000: Can not found arbiter-10000#guest-9999#host-10000#model' in result['msg']
    assert "model_local_cache" in result['msg']  # what to do
    host = [p for p in result['parties'] if p['role'] == 'host'][0]
    assert host['ok'] is False and host['new_party_id'] == 100 and host['party_model_id'] == 'host#100#' + NEW_MODEL_ID
    assert result['party'] == {'role': 'host', 'party_id': 10000}


def test_transport_failure_missing_detail(monkeypatch):
    fake = FakeFlow('1.8').on('/v1/model/migrate', fixture('g3/migrate_transport_failure'))
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 101
    assert 'arbiter 10000: no answer from this party' in result['msg']
    assert 'host 10000: no answer from this party' in result['msg']
    assert 'guest' not in [p['role'] for p in result['parties'] if not p['ok']]


def test_version_occupied_on_1_9_plus_rerun_means_already_migrated(monkeypatch):
    # MULTIPLE rerun: the remote party's model is not visible here, so it is resubmitted and refused
    # because exactly this migrated model exists there (1.9+ check: role, new party, new model id, version).
    fake = FakeFlow('1.11').on('/v1/model/migrate', fixture('g4/migrate_version_occupied'))
    fake.on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_migrate, dict(BASE, execute_party={'guest': [9999]}), fake, monkeypatch)
    assert not result.get('failed'), result
    assert result['changed'] is False and len(_migrate_calls(fake)) == 1
    assert result['parties'][0]['status'] == 'already_migrated'
    assert 'has been occupied' in result['parties'][0]['retmsg']


def test_version_occupied_with_another_failure_still_fails(monkeypatch):
    body = fixture_json('g4/migrate_party_failed', archive_dir='/x')
    body['data']['guest']['9999'] = 100
    body['data']['detail']['guest']['9999'] = {'retcode': 100, 'retmsg': 'Unify model version 20200901_0001 has been '
                                               'occupied in database. Please choose another unify model version and try again.'}
    fake = FakeFlow('1.11').on('/v1/model/migrate', json_reply(body))
    fake.on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed'] and 'host 10000: Can not found' in result['msg']


def test_version_occupied_before_1_9_is_an_error(monkeypatch):
    # <= 1.8 refuse any unify version already used by any model: it does not prove this migration happened.
    fake = FakeFlow('1.8').on('/v1/model/migrate', fixture('g4/migrate_version_occupied'))
    result = run_module(model_migrate, dict(BASE, execute_party={'guest': [9999]}), fake, monkeypatch)
    assert result['failed'] and 'Choose another unify_model_version' in result['msg']
    assert 'try again..' not in result['msg']


def test_server_side_refusal_is_reported(monkeypatch):
    fake = FakeFlow('1.8').on('/v1/model/migrate', fixture('g3/migrate_missing_argument'))
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 101 and result['endpoint'] == '/v1/model/migrate'


def test_502_retried_then_fails(monkeypatch):
    fake = FakeFlow('1.8').on('/v1/model/migrate', fixture('common/nginx_502'))
    result = run_module(model_migrate, dict(BASE, retries=2, retry_delay=0.25), fake, monkeypatch)
    assert result['failed'] and result['http_status'] == 502
    assert len(_migrate_calls(fake)) == 3 and fake.sleeps == [0.25, 0.5]
    assert len(result['warnings']) == 2


# -- versions -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('version, message', [('1.4', 'has no model migration API'), ('1.5.0', 'FATE 1.5.0 fails')])
def test_no_migration_on_old_versions(monkeypatch, version, message):
    fake = FakeFlow(version)
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed'] and message in result['msg'] and result['reason'] == 'unsupported'
    assert _migrate_calls(fake) == []


def test_fate_flow_2_refused(monkeypatch):
    fake = FakeFlow('2.0')
    result = run_module(model_migrate, BASE, fake, monkeypatch)
    assert result['failed'] and '2.x' in result['msg']
    assert _migrate_calls(fake) == []


@pytest.mark.parametrize('version, temp', [('1.6.1', 'temp/fate_flow'), ('1.8', 'fateflow/temp'), ('1.11', 'fateflow/temp')])
def test_fate_home_gives_the_archive_dir(monkeypatch, version, temp):
    fake = FakeFlow(version).on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_migrate, dict(BASE, fate_home='/data/projects/fate'), fake, monkeypatch, check_mode=True)
    for party in result['parties']:
        assert party['archive_path'] == os.path.join('/data/projects/fate', temp, party['archive_name'])


# -- check mode and idempotency ---------------------------------------------------------------------------

def test_check_mode_reports_new_ids_and_submits_nothing(monkeypatch):
    fake = FakeFlow('1.6.1')
    result = run_module(model_migrate, BASE, fake, monkeypatch, check_mode=True, diff=True)
    assert result['changed'] is True and _migrate_calls(fake) == []
    assert result['model_id'] == NEW_MODEL_ID
    assert sorted(p['archive_name'] for p in result['parties']) == [
        'arbiter#100#%s_%s.zip' % (NEW_MODEL_ID, UNIFY), 'guest#99#%s_%s.zip' % (NEW_MODEL_ID, UNIFY),
        'host#100#%s_%s.zip' % (NEW_MODEL_ID, UNIFY)]
    assert all(p['status'] == 'would_migrate' for p in result['parties'])
    assert result['diff']['before'] == {'archives': []} and len(result['diff']['after']['archives']) == 3


def _write_done_archives(directory, roles=('arbiter', 'guest', 'host')):
    new_ids = {'arbiter': 100, 'guest': 99, 'host': 100}
    for role in roles:
        make_archive(os.path.join(directory, '%s#%d#%s_%s.zip' % (role, new_ids[role], NEW_MODEL_ID, UNIFY)))


def test_rerun_with_existing_archives_changes_nothing(monkeypatch, tmp_path):
    _write_done_archives(str(tmp_path))
    fake = FakeFlow('1.6.1')
    result = run_module(model_migrate, dict(BASE, archive_dir=str(tmp_path)), fake, monkeypatch)
    assert result['changed'] is False and _migrate_calls(fake) == []
    assert all(p['status'] == 'already_migrated' and len(p['archive_sha256']) == 64 for p in result['parties'])
    check = run_module(model_migrate, dict(BASE, archive_dir=str(tmp_path)), FakeFlow('1.6.1'), monkeypatch, check_mode=True)
    assert check['changed'] is False


def test_partial_rerun_submits_only_missing_parties(monkeypatch, tmp_path):
    _write_done_archives(str(tmp_path), roles=('guest',))
    fake = FakeFlow('1.6.1').on('/v1/model/migrate', json_reply({
        'data': {'arbiter': {'10000': 0}, 'host': {'10000': 0},
                 'detail': {'arbiter': {'10000': {'retcode': 0, 'retmsg': 'Migrating model successfully.'}},
                            'host': {'10000': {'retcode': 0, 'retmsg': 'Migrating model successfully.'}}}},
        'jobId': '1', 'retcode': 0, 'retmsg': 'success'}))
    result = run_module(model_migrate, dict(BASE, archive_dir=str(tmp_path)), fake, monkeypatch)
    assert result['changed'] is True
    assert _migrate_calls(fake)[0].json['execute_party'] == {'arbiter': [10000], 'host': [10000]}
    status = dict((p['role'], p['status']) for p in result['parties'])
    assert status == {'arbiter': 'migrated', 'guest': 'already_migrated', 'host': 'migrated'}


def test_rerun_on_1_9_plus_finds_the_registered_model(monkeypatch):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_migrated_guest'))
    result = run_module(model_migrate, dict(BASE, execute_party={'guest': [9999]}), fake, monkeypatch)
    assert result['changed'] is False and _migrate_calls(fake) == []
    assert result['parties'][0]['status'] == 'already_migrated'
    assert result['parties'][0]['archive_sha256'].startswith('6a1c4fd1')
    expected = {'model_id': NEW_MODEL_ID, 'model_version': UNIFY, 'role': 'guest', 'party_id': '99'}
    assert fake.calls_to('/v1/model/query')[0].json == expected


def test_stale_archive_of_another_model_fails(monkeypatch, tmp_path):
    make_archive(str(tmp_path / GUEST_ARCHIVE), pipeline=guide_pipeline(version='other_version'))
    fake = FakeFlow('1.6.1')
    result = run_module(model_migrate, dict(BASE, archive_dir=str(tmp_path), execute_party={'guest': [9999]}), fake, monkeypatch)
    assert result['failed'] and 'holds another model' in result['msg']
    assert _migrate_calls(fake) == []


def test_archive_dir_and_fate_home_exclusive(monkeypatch):
    result = run_module(model_migrate, dict(BASE, archive_dir='/a', fate_home='/b'), FakeFlow('1.11'), monkeypatch)
    assert result['failed'] and 'mutually exclusive' in result['msg']
