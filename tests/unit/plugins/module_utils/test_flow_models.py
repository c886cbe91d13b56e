# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import json
import os
import zipfile

import pytest

from ansible_collections.fate.flow.plugins.module_utils import _flow_models as m
from ansible_collections.fate.flow.tests.unit.plugins.fake_flow import (
    FIXTURES,
    NEW_ROLES,
    OLD_ROLES,
    encode_pipeline,
    guide_pipeline,
    make_archive,
)


# -- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize('roles, expected', [
    ({'guest': [99], 'host': [100], 'arbiter': [100]}, 'arbiter-100#guest-99#host-100#model'),
    ({'guest': [9999], 'host': [10000], 'arbiter': [10000]}, 'arbiter-10000#guest-9999#host-10000#model'),
    ({'host': [10001, 10000], 'guest': [9999]}, 'guest-9999#host-10000_10001#model'),
    ({'host': [10000, 10000, 9], 'guest': [9999]}, 'guest-9999#host-9_10000#model'),
    ({}, 'all#model'),
])
def test_gen_model_id_like_fate(roles, expected):
    assert m.gen_model_id(roles) == expected


def test_gen_model_id_sorts_ints_numerically_and_strings_lexically():
    # FATE sorts the raw JSON values: that is why the migrate module converts ids to int first.
    assert m.gen_model_id({'guest': [9, 10]}) == 'guest-9_10#model'
    assert m.gen_model_id({'guest': ['9', '10']}) == 'guest-10_9#model'


def test_party_model_id_and_archive_name():
    assert m.party_model_id('guest', 99, 'arbiter-100#guest-99#host-100#model') == \
        'guest#99#arbiter-100#guest-99#host-100#model'
    assert m.archive_name('host', 100, 'arbiter-100#guest-99#host-100#model', '20200901_0001') == \
        'host#100#arbiter-100#guest-99#host-100#model_20200901_0001.zip'


@pytest.mark.parametrize('retmsg, expected', [
    ("Migrating model successfully. The configuration of model has been modified automatically. New model id is: "
     "arbiter-100#guest-99#host-100#model, model version is: 20200901_0001. Model files can be found at "
     "'/data/projects/fate/temp/fate_flow/guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip'.",
     '/data/projects/fate/temp/fate_flow/guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip'),
    ("The Config of model has been modified automatically. Model files can be found at '/x/y.zip'", '/x/y.zip'),
    ('Can not found arbiter-10000#guest-9999#host-10000#model 1 model local cache', None),
    (None, None),
])
def test_parse_archive_path(retmsg, expected):
    assert m.parse_archive_path(retmsg) == expected


# -- party ids and role maps ------------------------------------------------------------------

@pytest.mark.parametrize('value, expected', [(9999, 9999), ('9999', 9999), (' 100 ', 100), (100.0, 100)])
def test_to_int_party_id(value, expected):
    assert m.to_int_party_id(value) == expected


@pytest.mark.parametrize('value', ['abc', '9.5', True, None, [1], 9.5])
def test_to_int_party_id_rejects(value):
    with pytest.raises(m.ModelSpecError):
        m.to_int_party_id(value)


@pytest.mark.parametrize('value', ['9' * 19, 10 ** 18, '9' * 5000, '9999; touch /tmp/x', '$(id)', ' ', ''])
def test_to_int_party_id_rejects_hostile_and_huge_values(value):
    with pytest.raises(m.ModelSpecError) as info:
        m.to_int_party_id(value, 'role.guest')
    assert str(info.value).startswith('role.guest ') and 'is not an integer party id' in str(info.value)
    assert len(str(info.value)) < 200, 'very long input is shortened in the message'


@pytest.mark.parametrize('value', ['202006171911346893310', 'arbiter-10000#guest-9999#host-10000#model',
                                   "v 1;$(cd;touch m)`id`'\"#x", 'a' * 255, 'caf\u00e9', '-rf'])
def test_check_name_passes_literal_values(value):
    assert m.check_name(value, 'model_version') == value


@pytest.mark.parametrize('value, problem', [
    ('', 'is empty'), ('   ', 'is empty'), (' 2020', 'leading or trailing whitespace'),
    ('2020\n', 'leading or trailing whitespace'), ('../../etc', "contains '/'"), ('a\\b', "contains '/'"),
    ('..', 'relative directory name'), ('a\tb', 'control character'), ('a\x00b', 'control character'),
    ('a' * 256, 'is 256 bytes long'), ('\u00e9' * 128, 'is 256 bytes long'),
])
def test_check_name_refuses(value, problem):
    with pytest.raises(m.ModelSpecError) as info:
        m.check_name(value, 'model_version')
    assert str(info.value).startswith('model_version ') and problem in str(info.value)
    assert len(str(info.value)) < 250


def test_check_name_types_and_optional():
    assert m.check_name(None, 'model_id', required=False) is None
    with pytest.raises(m.ModelSpecError, match='model_id is required'):
        m.check_name(None, 'model_id')
    with pytest.raises(m.ModelSpecError, match='must be text, got int'):
        m.check_name(5, 'model_id')
    m.check_model_names({'model_id': 'm', 'model_version': None}, 'model_id', 'model_version', required=False)
    with pytest.raises(m.ModelSpecError, match='model_version'):
        m.check_model_names({'model_id': 'm', 'model_version': '../x'}, 'model_id', 'model_version')


def test_check_file_name():
    assert m.check_file_name('a' * 255, 'archive') == 'a' * 255
    with pytest.raises(m.ModelSpecError, match='archive .* is 256 bytes long.*shorter model id or version'):
        m.check_file_name('a' * 256, 'archive')


def test_validate_migrate_roles_converts_and_maps_by_position():
    role, migrate_role, execute, initiator, mapping = m.validate_migrate_roles(
        {'guest': ['9999'], 'host': [10000, '10001'], 'arbiter': [10000]},
        {'guest': [99], 'host': ['100', 101], 'arbiter': ['100']})
    assert role == {'guest': [9999], 'host': [10000, 10001], 'arbiter': [10000]}
    assert migrate_role == {'guest': [99], 'host': [100, 101], 'arbiter': [100]}
    assert execute == role
    assert initiator == {'role': 'guest', 'party_id': 99}
    assert mapping[('host', 10001)] == 101 and mapping[('arbiter', 10000)] == 100


@pytest.mark.parametrize('role, migrate_role, execute_party, initiator, message', [
    (OLD_ROLES, OLD_ROLES, None, None, 'no need to migrate'),
    (OLD_ROLES, {'guest': ['9999'], 'host': [10000], 'arbiter': ['10000']}, None, None, 'no need to migrate'),
    (OLD_ROLES, {'guest': [99], 'host': [100]}, None, None, 'same roles'),
    (OLD_ROLES, {'guest': [99], 'host': [100, 101], 'arbiter': [100]}, None, None, 'same number of parties'),
    ({'guest': [9999], 'arbiter': [10000]}, {'guest': [99], 'arbiter': [100]}, None, None, 'must both include host'),
    (OLD_ROLES, {'guest': ['ninety-nine'], 'host': [100], 'arbiter': [100]}, None, None, 'not an integer'),
    (OLD_ROLES, NEW_ROLES, {'guest': [99]}, None, r'original \(old\) party ids'),
    (OLD_ROLES, NEW_ROLES, {'local': [9999]}, None, 'unknown role'),
    (OLD_ROLES, NEW_ROLES, None, {'role': 'guest', 'party_id': 9999}, 'not one of the parties'),
    (OLD_ROLES, NEW_ROLES, None, {'role': 'guest'}, 'role and party_id'),
    ({'guest': [9999, 9999], 'host': [1]}, {'guest': [99, 98], 'host': [2]}, None, None, 'same party id twice'),
    ({'guest': []}, NEW_ROLES, None, None, 'non-empty list'),
    ('guest', NEW_ROLES, None, None, 'non-empty mapping'),
])
def test_validate_migrate_roles_refuses(role, migrate_role, execute_party, initiator, message):
    with pytest.raises(m.ModelSpecError, match=message):
        m.validate_migrate_roles(role, migrate_role, execute_party, initiator)


def test_execute_party_string_ids_match_int_roles():
    # FATE matches execute_party ids against role ids with their JSON type; the module sends ints for both.
    _role, _new, execute, _init, _map = m.validate_migrate_roles(OLD_ROLES, NEW_ROLES, {'host': ['10000']})
    assert execute == {'host': [10000]}


# -- files -----------------------------------------------------------------------------------------

def test_file_digests_and_sidecar(tmp_path):
    path = tmp_path / 'a.zip'
    path.write_bytes(b'abc')
    digests = m.file_digests(str(path), ('sha256', 'sha1'))
    assert digests['sha256'] == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    assert m.read_sha1_sidecar(str(path)) is None
    (tmp_path / 'a.zip.sha1').write_text(digests['sha1'] + '\n')
    facts = m.archive_facts(str(path))
    assert facts['archive_sha1'] == digests['sha1'] and facts['archive_sha1_matches'] is True
    (tmp_path / 'a.zip.sha1').write_text('0' * 40)
    assert m.archive_facts(str(path))['archive_sha1_matches'] is False
    assert m.archive_facts(str(tmp_path / 'missing.zip')) is None


# -- pipeline decoding -------------------------------------------------------------------------------

def _pipeline_fixture(name):
    with open(os.path.join(FIXTURES, 'pipeline', name + '.json')) as handle:
        return base64.b64decode(json.load(handle)['base64'])


def test_decode_pipeline_of_real_protobuf_encoding():
    pipeline = m.decode_pipeline(_pipeline_fixture('migrated_guest_1_6'))
    assert pipeline['model_id'] == 'arbiter-100#guest-99#host-100#model'
    assert pipeline['model_version'] == '20200901_0001'
    assert pipeline['fate_version'] == '1.6.1'
    assert pipeline['train_runtime_conf']['role'] == {'guest': [99], 'host': [100], 'arbiter': [100]}
    assert pipeline['roles'] == OLD_ROLES  # FATE <= 1.8 migration leaves Pipeline.roles stale
    assert m.pipeline_roles(pipeline) == {'guest': [99], 'host': [100], 'arbiter': [100]}
    assert pipeline['initiator_party_id'] == 99 and pipeline['work_mode'] == 1
    assert pipeline['parent_info']['parent_model_version'] == '202006171904247702041'
    assert 'parent' not in pipeline  # proto3 leaves false out


def test_decode_pipeline_negative_int32_and_flags():
    pipeline = m.decode_pipeline(_pipeline_fixture('negative_and_flags'))
    assert pipeline == {'model_id': 'm', 'model_version': 'v', 'parent': True, 'loaded_times': 3,
                        'initiator_party_id': -5}


def test_decode_pipeline_skips_unknown_fields_and_matches_test_encoder():
    raw = encode_pipeline(guide_pipeline()) + b'\xa8\x06\x01' + b'\xb2\x06\x02hi'  # fields 101 (varint), 102 (bytes)
    decoded = m.decode_pipeline(raw)
    assert decoded['model_id'] == 'arbiter-100#guest-99#host-100#model'
    assert decoded['roles'] == NEW_ROLES


@pytest.mark.parametrize('raw', [b'\x2a\x10abc', b'\x28', b'\x2b\x00', b'\x00\x01', b'\x2a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01'])
def test_decode_pipeline_rejects_garbage(raw):
    with pytest.raises(m.WireError):
        m.decode_pipeline(raw)


def test_decode_fields_fixed_width():
    raw = b'\x09' + b'\x01' * 8 + b'\x15' + b'\x02' * 4
    assert m.decode_fields(raw) == [(1, 1, b'\x01' * 8), (2, 5, b'\x02' * 4)]


# -- archives -----------------------------------------------------------------------------------------

def test_inspect_archive_reads_the_model(tmp_path):
    path = make_archive(str(tmp_path / 'a.zip'))
    facts = m.inspect_archive(path, 'guest', '99')
    assert facts['model_id'] == 'arbiter-100#guest-99#host-100#model'
    assert facts['model_version'] == '20200901_0001'
    assert facts['roles'] == NEW_ROLES
    assert facts['initiator'] == {'role': 'guest', 'party_id': 99}
    m.inspect_archive(path, 'arbiter', 100)


@pytest.mark.parametrize('builder, message', [
    (lambda p: open(p, 'wb').write(b'not a zip'), 'not a readable zip'),
    (lambda p: make_archive(p, entries={'../escape': b'x'}), "contains '..'"),
    (lambda p: make_archive(p, entries={'/etc/cron.d/x': b'x'}), 'absolute path'),
    (lambda p: make_archive(p, entries={'C:\\windows\\x': b'x'}), 'absolute path'),
    (lambda p: make_archive(p, skip=('variables/data/pipeline/pipeline/Pipeline',)), 'has no variables/data/pipeline'),
    (lambda p: make_archive(p, skip=('define/define_meta.yaml',)), 'has no define/define_meta.yaml'),
    (lambda p: make_archive(p, entries={'variables/data/pipeline/pipeline/Pipeline': b'\x2a\x10abc'}), 'not a valid Pipeline'),
])
def test_inspect_archive_refuses(tmp_path, builder, message):
    path = str(tmp_path / 'bad.zip')
    builder(path)
    with pytest.raises(m.ModelSpecError, match=message):
        m.inspect_archive(path, 'guest', 99)


def test_inspect_archive_party_must_be_in_role(tmp_path):
    path = make_archive(str(tmp_path / 'a.zip'))
    with pytest.raises(m.ModelSpecError, match='party 9999 is not a guest party'):
        m.inspect_archive(path, 'guest', 9999)  # the old id of a migrated model
    with pytest.raises(m.ModelSpecError, match='party 99 is not a host party'):
        m.inspect_archive(path, 'host', 99)


def test_inspect_archive_missing_and_directory(tmp_path):
    with pytest.raises(m.ModelSpecError, match='does not exist'):
        m.inspect_archive(str(tmp_path / 'none.zip'))
    with pytest.raises(m.ModelSpecError, match='is not a file'):
        m.inspect_archive(str(tmp_path))


def test_inspect_archive_does_not_extract(tmp_path):
    path = make_archive(str(tmp_path / 'a.zip'), entries={'../../evil': b'x'})
    with pytest.raises(m.ModelSpecError):
        m.inspect_archive(path)
    assert not os.path.exists(str(tmp_path.parent.parent / 'evil'))
    with zipfile.ZipFile(path) as archive:
        assert '../../evil' in archive.namelist()


def test_pipeline_fingerprint_matches_query_row_shape():
    pipeline = guide_pipeline()
    row = {'fate_version': '1.6.1', 'train_dsl': pipeline['train_dsl'], 'inference_dsl': pipeline['inference_dsl'],
           'train_runtime_conf': dict(pipeline['train_runtime_conf'], role={'guest': ['99'], 'host': ['100'], 'arbiter': ['100']})}
    assert m.pipeline_fingerprint(pipeline) == m.pipeline_fingerprint(row)
    row['train_dsl'] = '{"components": {}}'
    assert m.pipeline_fingerprint(pipeline) != m.pipeline_fingerprint(row)
