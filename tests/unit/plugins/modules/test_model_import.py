# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.fate.flow.plugins.modules import model_import
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    NEW_MODEL_ID,
    UNIFY,
    FakeFlow,
    fixture,
    fixture_json,
    guide_pipeline,
    json_reply,
    make_archive,
    run_module,
)

NAME = 'guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip'


@pytest.fixture
def archive(tmp_path):
    return make_archive(str(tmp_path / NAME))


def _sha256(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _args(archive, **extra):
    return dict(dict(archive=archive, role='guest', party_id=99), **extra)


def _imports(fake):
    return fake.calls_to('/v1/model/import')


def _archive_like_row(path, name):
    """An archive of the model a query row describes (the row was made from its Pipeline)."""
    row = fixture_json(name, sha256='')['data'][0]
    return make_archive(path, pipeline=guide_pipeline(fate_version=row['f_fate_version'], train_dsl=row['f_train_dsl'],
                                                      inference_dsl=row['f_inference_dsl']))


# -- 1.9+ ------------------------------------------------------------------------------------------

def test_fresh_import_on_1_11(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'),
                               fixture('g4/query_imported_guest', sha256=_sha256(archive)))
    fake.on('/v1/model/import', fixture('g4/import_success'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['status'] == 'imported' and result['verified'] is True
    assert len(fake.calls_to('/v1/model/query')) == 2  # looked up before, verified after
    assert result['model_id'] == NEW_MODEL_ID and result['model_version'] == UNIFY  # read from the archive
    assert result['party_model_id'] == 'guest#99#' + NEW_MODEL_ID
    assert result['job_id'] == '202211091127392613051'
    parts = _imports(fake)[0].form()
    fields = dict((name, value.decode()) for name, filename, value in parts if filename is None)
    assert fields == {'role': 'guest', 'party_id': '99', 'model_id': NEW_MODEL_ID, 'model_version': UNIFY,
                      'force_update': '0', 'hash': _sha256(archive)}
    name, filename, content = parts[-1]
    with open(archive, 'rb') as handle:
        assert (name, filename, content) == ('file', NAME, handle.read())


def test_second_run_on_1_11_finds_same_sha256(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_imported_guest', sha256=_sha256(archive)))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['changed'] is False and result['status'] == 'already_imported' and result['compared_by'] == 'sha256'
    assert result['verified'] is True
    assert _imports(fake) == []


def test_model_left_by_migration_on_the_same_flow_is_reused(monkeypatch, tmp_path):
    # 1.9+ keep the migrated model on the executing Flow; its row has the same pipeline content.
    archive = _archive_like_row(str(tmp_path / NAME), 'g4/query_imported_guest')
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_imported_guest', sha256='0' * 64))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['changed'] is False and result['compared_by'].startswith('pipeline content')
    assert _imports(fake) == []


def test_different_model_fails_without_force(monkeypatch, tmp_path):
    other = make_archive(str(tmp_path / 'other.zip'), pipeline=guide_pipeline(fate_version='1.8.0'))
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_imported_guest', sha256='0' * 64))
    result = run_module(model_import, _args(other), fake, monkeypatch)
    assert result['failed'] and result['reason'] == 'conflict'
    assert 'A different model is already imported' in result['msg'] and 'force=true' in result['msg']
    assert _imports(fake) == []


def test_force_replaces_on_1_11(monkeypatch, tmp_path):
    other = make_archive(str(tmp_path / 'other.zip'), pipeline=guide_pipeline(fate_version='1.8.0'))
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_imported_guest', sha256='0' * 64))
    fake.on('/v1/model/import', fixture('g4/import_success'))
    result = run_module(model_import, _args(other, force=True), fake, monkeypatch, diff=True)
    assert result['changed'] is True and result['status'] == 'replaced'
    fields = dict((n, v) for n, f, v in _imports(fake)[0].form() if f is None)
    assert fields['force_update'] == b'1'
    assert result['diff']['before']['fate_version'] == '1.11.4' and result['diff']['after']['fate_version'] == '1.8.0'


def test_409_when_the_query_missed_it(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    fake.on('/v1/model/import', fixture('g4/import_conflict_409'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['failed'] and result['http_status'] == 409 and result['reason'] == 'conflict'
    assert 'Model already exists.' in result['msg'] and 'force' in result['msg']


def test_party_refused_by_the_server_400(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    fake.on('/v1/model/import', fixture('g4/import_party_not_in_role_400'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['failed'] and result['http_status'] == 400 and 'Import with the role and party id' in result['msg']


def test_hash_mismatch(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    fake.on('/v1/model/import', fixture('g4/import_hash_mismatch'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['failed'] and 'copy it again' in result['msg']


# -- <= 1.8 --------------------------------------------------------------------------------------------

def test_import_accepted_but_not_listed_fails(monkeypatch, archive):
    # FATE Flow answered "success" but its query does not show the model: nothing to load later, say so now.
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    fake.on('/v1/model/import', fixture('g4/import_success'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['failed'] is True
    assert 'accepted the import of guest#99#' + NEW_MODEL_ID in result['msg']
    assert 'does not list the model' in result['msg'] and 'run again' in result['msg']
    assert 'job 202211091127392613051' in result['msg']


def test_fresh_import_on_1_6_has_no_force_or_hash(monkeypatch, archive):
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_not_found'), fixture('g2/query_imported_guest'))
    fake.on('/v1/model/import', fixture('g2/import_success'))
    result = run_module(model_import, _args(archive, party_id='99'), fake, monkeypatch)
    assert result['status'] == 'imported' and 'job_id' not in result
    names = [n for n, f, v in _imports(fake)[0].form()]
    assert names == ['role', 'party_id', 'model_id', 'model_version', 'file']


def test_second_run_on_1_6_compares_pipeline_content(monkeypatch, tmp_path):
    archive = _archive_like_row(str(tmp_path / NAME), 'g2/query_imported_guest')
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_imported_guest'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['changed'] is False and _imports(fake) == []
    assert 'fate_version' in result['compared_by'] and 'train_dsl' in result['compared_by']


def test_force_cannot_replace_before_1_9(monkeypatch, tmp_path):
    other = make_archive(str(tmp_path / 'other.zip'), pipeline=guide_pipeline(fate_version='1.5.3'))
    fake = FakeFlow('1.6.1').on('/v1/model/query', fixture('g2/query_imported_guest'))
    result = run_module(model_import, _args(other, force=True), fake, monkeypatch)
    assert result['failed'] and 'force_update needs FATE Flow 1.9+' in result['msg']
    assert 'model_local_cache/guest#99#' in result['msg']
    assert _imports(fake) == []


def test_duplicate_retcode_100_on_1_8(monkeypatch, archive):
    fake = FakeFlow('1.8').on('/v1/model/query', fixture('g2/query_not_found'))
    fake.on('/v1/model/import', fixture('g2/import_duplicate'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['failed'] and result['retcode'] == 100
    assert 'local cache already existed' in result['msg'] and 'remove it first' in result['msg']


def test_duplicate_on_1_5_0_without_query(monkeypatch, archive):
    fake = FakeFlow('1.5.0').on('/v1/model/import', fixture('g2/import_duplicate'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['changed'] is False and result['status'] == 'already_imported'
    assert 'was not checked' in result['warnings'][0]
    assert fake.calls_to('/v1/model/query') == []


def test_1_4_import(monkeypatch, archive):
    fake = FakeFlow('1.4').on('/v1/model/import', fixture('g2/import_success'))
    result = run_module(model_import, _args(archive), fake, monkeypatch)
    assert result['changed'] is True and len(_imports(fake)) == 1
    assert result['verified'] is False  # 1.4 cannot be queried


# -- archive checks before sending ----------------------------------------------------------------------

@pytest.mark.parametrize('builder, message', [
    (lambda p: open(p, 'wb').write(b'<html>not a zip</html>'), 'not a readable zip'),
    (lambda p: make_archive(p, entries={'../../etc/passwd': b'x'}), "contains '..'"),
    (lambda p: make_archive(p, entries={'/abs/file': b'x'}), 'absolute path'),
    (lambda p: make_archive(p, skip=('variables/data/pipeline/pipeline/Pipeline',)), 'not a FATE model archive'),
])
def test_bad_archives_are_refused_before_contacting_flow(monkeypatch, tmp_path, builder, message):
    path = str(tmp_path / 'bad.zip')
    builder(path)
    fake = FakeFlow('1.11')
    result = run_module(model_import, _args(path), fake, monkeypatch)
    assert result['failed'] and message in result['msg'] and result['archive'] == path
    assert fake.calls == []


def test_party_must_be_in_the_model(monkeypatch, archive):
    fake = FakeFlow('1.11')
    result = run_module(model_import, _args(archive, party_id=9999), fake, monkeypatch)
    assert result['failed'] and 'party 9999 is not a guest party' in result['msg']
    assert fake.calls == []


def test_missing_archive(monkeypatch, tmp_path):
    result = run_module(model_import, _args(str(tmp_path / 'nope.zip')), FakeFlow('1.11'), monkeypatch)
    assert result['failed'] and 'does not exist on the host where the module runs' in result['msg']


def test_check_mode_validates_and_uploads_nothing(monkeypatch, archive):
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'))
    result = run_module(model_import, _args(archive), fake, monkeypatch, check_mode=True, diff=True)
    assert result['changed'] is True and result['status'] == 'would_import'
    assert result['diff']['before'] == {} and result['diff']['after']['archive_sha256'] == _sha256(archive)
    assert _imports(fake) == []


def test_explicit_ids_override_the_archive_with_a_warning(monkeypatch, archive):
    stored = fixture_json('g4/query_imported_guest', sha256=_sha256(archive))
    stored['data'][0]['f_model_version'] = 'v2'
    fake = FakeFlow('1.11').on('/v1/model/query', fixture('g4/query_not_found'), json_reply(stored))
    fake.on('/v1/model/import', fixture('g4/import_success'))
    result = run_module(model_import, _args(archive, model_version='v2'), fake, monkeypatch)
    assert result['model_version'] == 'v2'
    assert 'differs from the one in the archive' in result['warnings'][0]
