# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

"""Targeted edits of FATE config files: only the owned keys change, every other byte stays."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.fate.flow.plugins.module_utils import _serving_link as sl


# ------------------------------------------------------------------------------------------------ samples

SERVICE_CONF_16 = """\
work_mode: 1
use_registry: false
use_deserialize_safe_module: false
fateflow:
  # give an address the other services can reach
  host: 192.168.0.2
  http_port: 9380
  grpc_port: 9360
  # proxy:
  #   name: fateflow
  proxy: rollsite
  protocol: default
database:
  name: fate_flow
  user: fate
  passwd: fate_dev
zookeeper:
  hosts:
    - 127.0.0.1:2181
  use_acl: false
  user: fate
  password: fate
fate_on_spark:
  spark:
    # empty: use the SPARK_HOME environment variable
    home:
    cores_per_node: 20
# FATE-Serving servers that receive load and bind requests
servings:
  hosts:
    - 127.0.0.1:8000
fatemanager:
  host: 127.0.0.1
  port: 8001
"""

SERVICE_CONF_111 = """\
use_registry: false
use_deserialize_safe_module: false
dependent_distribution: false
encrypt_password: false
encrypt_module: fate_arch.common.encrypt_utils#pwdecrypt
private_key:
party_id: 9999
hook_module:
  client_authentication: fate_flow.hook.flow.client_authentication
fateflow:
  host: 192.168.0.2
  http_port: 9380
  grpc_port: 9360
  nginx:
    host:
    http_port:
    grpc_port:
  random_instance_id: false
  proxy: rollsite
zookeeper:
  hosts:
    - 127.0.0.1:2181
  use_acl: false
  user: fate
  password: fate
enable_model_store: false
model_store_address:
  storage: mysql
  password: fate_dev
servings:
  hosts:
    - 127.0.0.1:8000
fatemanager:
  host: 127.0.0.1
  port: 8001
  federatedId: 0
fateboard:
  host: 192.168.0.2
  port: 8080
"""

# FATE 1.4.5's base_conf.yaml is written in flow style.
BASE_CONF_145 = """\
work_mode: 0
use_registry: false
fate_flow: {host: 0.0.0.0, http_port: 9380, grpc_port: 9360}
database: {name: fate_flow, user: fate_dev, passwd: fate_dev, host: 127.0.0.1, port: 3306, max_connections: 100, stale_timeout: 30}
zookeeper: {hosts: [127.0.0.1:2281], use_acl: true, user: fate, password: fate}
model_store_address: {storage: mysql, name: model, host: 127.0.0.1, port: 3306, user: fate_dev, passwd: fate_dev, max_connections: 10, stale_timeout: 10}
"""

SERVER_CONF_14 = json.dumps({"servers": {
    "roll": {"host": "localhost", "port": 8011},
    "federation": {"host": "localhost", "port": 9394},
    "fateflow": {"host": "localhost", "grpc.port": 9360, "http.port": 9380},
    "fateboard": {"host": "localhost", "port": 8080},
    "proxy": {"host": "localhost", "port": 9370},
    "fatemanager": {"host": "localhost", "port": 8001, "federatedId": 0},
    "servings": ["127.0.0.1:8000"]}}, indent=4) + "\n"


def _edit(text, changes):
    doc = sl.YamlDocument(text, 'test.yaml')
    for path, value in changes:
        doc.set(path, value)
    doc.validate()
    return doc.text


def _replace_once(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


# ------------------------------------------------------------------------------------------------ YAML, block style

def test_service_conf_16_mode_a_changes_only_servings():
    after = _edit(SERVICE_CONF_16, [(('servings', 'hosts'), ['10.0.0.5:8000', '10.0.0.6:8000'])])
    expected = _replace_once(SERVICE_CONF_16, "servings:\n  hosts:\n    - 127.0.0.1:8000\n",
                             "servings:\n  hosts:\n    - 10.0.0.5:8000\n    - 10.0.0.6:8000\n")
    assert after == expected


def test_service_conf_16_mode_b_changes_only_zookeeper_keys():
    after = _edit(SERVICE_CONF_16, [
        (('use_registry',), True),
        (('zookeeper', 'hosts'), ['zk1:2181', 'zk2:2181']),
        (('zookeeper', 'use_acl'), True),
        (('zookeeper', 'user'), 'fate'),
        (('zookeeper', 'password'), 's3cret'),
    ])
    expected = _replace_once(SERVICE_CONF_16, "use_registry: false\n", "use_registry: true\n")
    expected = _replace_once(expected, "  hosts:\n    - 127.0.0.1:2181\n  use_acl: false\n  user: fate\n  password: fate\n",
                             "  hosts:\n    - zk1:2181\n    - zk2:2181\n  use_acl: true\n  user: fate\n  password: s3cret\n")
    assert after == expected


def test_service_conf_111_both_modes_keep_everything_else():
    after = _edit(SERVICE_CONF_111, [(('servings', 'hosts'), ['10.0.0.5:8000'])])
    assert after == _replace_once(SERVICE_CONF_111, "    - 127.0.0.1:8000\n", "    - 10.0.0.5:8000\n")
    after = _edit(SERVICE_CONF_111, [(('use_registry',), True), (('zookeeper', 'hosts'), ['zk:2181'])])
    expected = _replace_once(SERVICE_CONF_111, "use_registry: false\n", "use_registry: true\n")
    assert after == _replace_once(expected, "    - 127.0.0.1:2181\n", "    - zk:2181\n")


def test_inline_comments_and_quotes_survive():
    text = ("use_registry: false   # true: use ZooKeeper\n"
            "zookeeper:\n"
            "  hosts: [\"127.0.0.1:2181\"]  # the ensemble\n"
            "  use_acl: false\n"
            "  user: 'fate'\n"
            "  password: \"fate\" # change me\n")
    after = _edit(text, [(('use_registry',), True), (('zookeeper', 'hosts'), ['a:1', 'b:2']),
                         (('zookeeper', 'user'), "it's"), (('zookeeper', 'password'), 'n3w')])
    assert after == ("use_registry: true   # true: use ZooKeeper\n"
                     "zookeeper:\n"
                     "  hosts: [a:1, b:2]  # the ensemble\n"
                     "  use_acl: false\n"
                     "  user: 'it''s'\n"
                     "  password: \"n3w\" # change me\n")


@pytest.mark.parametrize('password, rendered', [
    ('abc', 'abc'),
    ('123456', '"123456"'),
    ('true', '"true"'),
    ('p@ss: #x', '"p@ss: #x"'),
    ('a,b', '"a,b"'),
    (' lead', '" lead"'),
    ('', '""'),
    ('caf\u00e9', 'caf\u00e9'),
])
def test_scalars_are_quoted_when_needed(password, rendered):
    text = "zookeeper:\n  password: fate\n"
    after = _edit(text, [(('zookeeper', 'password'), password)])
    assert after == "zookeeper:\n  password: %s\n" % rendered
    assert yaml.safe_load(after)['zookeeper']['password'] == password


def test_compact_sequence_and_odd_indentation():
    text = ("# four-space indent, compact lists\n"
            "servings:\n"
            "    hosts:\n"
            "    - 127.0.0.1:8000\n"
            "    - 127.0.0.1:8001\n"
            "    # trailing comment of servings\n"
            "zookeeper:\n"
            "    hosts:\n"
            "    -   127.0.0.1:2181\n"
            "    use_acl: false\n")
    after = _edit(text, [(('servings', 'hosts'), ['x:1']), (('zookeeper', 'hosts'), ['z:1', 'z:2'])])
    assert after == ("# four-space indent, compact lists\n"
                     "servings:\n"
                     "    hosts:\n"
                     "    - x:1\n"
                     "    # trailing comment of servings\n"
                     "zookeeper:\n"
                     "    hosts:\n"
                     "    - z:1\n"
                     "    - z:2\n"
                     "    use_acl: false\n")


def test_top_level_compact_list_servings():
    text = "servings:\n- 127.0.0.1:8000\n- 127.0.0.1:8001\nfatemanager:\n  port: 8001\n"
    after = _edit(text, [(('servings',), ['a:1'])])
    assert after == "servings:\n- a:1\nfatemanager:\n  port: 8001\n"


def test_crlf_line_endings_are_kept():
    text = SERVICE_CONF_16.replace('\n', '\r\n')
    after = _edit(text, [(('servings', 'hosts'), ['a:1', 'b:2']), (('use_registry',), True)])
    assert '\n' not in after.replace('\r\n', '')
    expected = _replace_once(SERVICE_CONF_16, "    - 127.0.0.1:8000\n", "    - a:1\n    - b:2\n")
    expected = _replace_once(expected, "use_registry: false\n", "use_registry: true\n")
    assert after == expected.replace('\n', '\r\n')


def test_no_newline_at_end_of_file():
    text = "use_registry: false\nservings:\n  hosts:\n    - 127.0.0.1:8000"
    after = _edit(text, [(('use_registry',), True)])
    assert after == "use_registry: true\nservings:\n  hosts:\n    - 127.0.0.1:8000"
    after = _edit(text, [(('servings', 'hosts'), ['a:1'])])
    assert after in ("use_registry: false\nservings:\n  hosts:\n    - a:1\n",
                     "use_registry: false\nservings:\n  hosts:\n    - a:1")


def test_empty_list_becomes_inline_and_back():
    after = _edit(SERVICE_CONF_16, [(('servings', 'hosts'), [])])
    assert after == _replace_once(SERVICE_CONF_16, "  hosts:\n    - 127.0.0.1:8000\n", "  hosts: []\n")
    again = _edit(after, [(('servings', 'hosts'), ['a:1'])])
    # an inline (flow) list stays inline
    assert again == _replace_once(SERVICE_CONF_16, "  hosts:\n    - 127.0.0.1:8000\n", "  hosts: [a:1]\n")


def test_null_and_missing_keys_are_added():
    text = "work_mode: 1\nservings:\nfatemanager:\n  port: 8001\n# end of file\n"
    after = _edit(text, [(('servings', 'hosts'), ['a:1']), (('use_registry',), False)])
    assert after == ("work_mode: 1\nservings:\n  hosts:\n    - a:1\nfatemanager:\n  port: 8001\n"
                     "use_registry: false\n# end of file\n")
    text = "zookeeper:\n  hosts:\n    - z:1\n  # acl below\n"
    after = _edit(text, [(('zookeeper', 'use_acl'), True), (('zookeeper', 'user'), 'fate')])
    assert after == "zookeeper:\n  hosts:\n    - z:1\n  use_acl: true\n  user: fate\n  # acl below\n"
    after = _edit("work_mode: 1\n", [(('zookeeper', 'hosts'), ['z:1']), (('zookeeper', 'use_acl'), False)])
    assert after == "work_mode: 1\nzookeeper:\n  hosts:\n    - z:1\n  use_acl: false\n"


def test_document_markers_and_block_scalars_elsewhere():
    text = ("%YAML 1.1\n---\n# header\nnote: |\n  servings:\n    hosts: not this one\nuse_registry: false\n"
            "servings:\n  hosts:\n    - 127.0.0.1:8000\n...\n")
    after = _edit(text, [(('servings', 'hosts'), ['a:1']), (('use_registry',), True)])
    assert after == ("%YAML 1.1\n---\n# header\nnote: |\n  servings:\n    hosts: not this one\nuse_registry: true\n"
                     "servings:\n  hosts:\n    - a:1\n...\n")


def test_servings_as_scalar_becomes_a_mapping():
    text = "servings: 127.0.0.1:8000  # one server\nfatemanager: {}\n"
    after = _edit(text, [(('servings',), {'hosts': ['a:1']})])
    assert after == "servings: {hosts: [a:1]}  # one server\nfatemanager: {}\n"


def test_comments_between_list_items_go_with_the_items():
    text = "servings:\n  hosts:\n    # first\n    - a:1\n    # second\n    - b:2\nnext: 1\n"
    after = _edit(text, [(('servings', 'hosts'), ['c:3'])])
    assert after == "servings:\n  hosts:\n    # first\n    - c:3\nnext: 1\n"


# ------------------------------------------------------------------------------------------------ YAML, flow style (FATE 1.4.5)

def test_base_conf_145_flow_mapping_edits():
    after = _edit(BASE_CONF_145, [
        (('use_registry',), True),
        (('zookeeper', 'hosts'), ['10.0.0.1:2181', '10.0.0.2:2181']),
        (('zookeeper', 'password'), 'n3w pass'),
    ])
    expected = _replace_once(BASE_CONF_145, "use_registry: false", "use_registry: true")
    expected = _replace_once(expected, "zookeeper: {hosts: [127.0.0.1:2281], use_acl: true, user: fate, password: fate}",
                             'zookeeper: {hosts: [10.0.0.1:2181, 10.0.0.2:2181], use_acl: true, user: fate, '
                             'password: n3w pass}')
    assert after == expected


def test_flow_mapping_missing_key_is_appended_inside():
    text = 'zookeeper: {hosts: ["127.0.0.1:2181"]}  # shared\nwork_mode: 1\n'
    after = _edit(text, [(('zookeeper', 'use_acl'), True), (('zookeeper', 'user'), 'fate')])
    assert after == 'zookeeper: {hosts: ["127.0.0.1:2181"], use_acl: true, user: fate}  # shared\nwork_mode: 1\n'
    after = _edit('zookeeper: {}\n', [(('zookeeper', 'hosts'), ['z:1'])])
    assert after == 'zookeeper: {hosts: [z:1]}\n'


def test_multiline_flow_mapping():
    text = "zookeeper: {hosts: [127.0.0.1:2281],\n  # acl\n  use_acl: true, user: fate, password: fate}\nx: 1\n"
    after = _edit(text, [(('zookeeper', 'use_acl'), False)])
    assert after == "zookeeper: {hosts: [127.0.0.1:2281],\n  # acl\n  use_acl: false, user: fate, password: fate}\nx: 1\n"


# ------------------------------------------------------------------------------------------------ YAML, refusals

@pytest.mark.parametrize('text', [
    "servings:\n  hosts:\n  - a\n - b\n",
    "servings: [a, b\nfoo: 1\n",
    "key: 'unterminated\n",
    "\tservings: 1\n",
])
def test_invalid_yaml_is_refused(text):
    with pytest.raises(sl.ServingLinkError, match='not valid YAML'):
        sl.YamlDocument(text, 'bad.yaml')


@pytest.mark.parametrize('kind, text, line, column', [
    ('yaml', "a: 1\nservings:\n  hosts:\n  - a\n - b\n", 5, 2),
    ('yaml', "a: 1\n{ not: [valid\n", 3, 1),
    ('json', '{\n    "servers": {\n        "servings": ["a"],\n    }\n}\n', 4, 5),
])
def test_unparsable_file_names_file_line_and_what_to_do(kind, text, line, column):
    name = '/data/projects/fate #1/conf/the_file'
    with pytest.raises(sl.ServingLinkError) as info:
        sl.document_for(kind, text, name)
    message = str(info.value)
    assert message.startswith('%s is not valid %s (line %d, column %d: ' % (name, kind.upper(), line, column))
    assert 'nothing was written' in message and 'fix it by hand' in message and 'then run again' in message
    assert '\n' not in message


def test_not_a_mapping_is_refused():
    with pytest.raises(sl.ServingLinkError, match='mapping'):
        sl.YamlDocument("- a\n- b\n", 'list.yaml')


def test_duplicate_key_is_refused():
    text = "use_registry: false\nzookeeper:\n  hosts: []\nuse_registry: true\n"
    doc = sl.YamlDocument(text, 'dup.yaml')
    with pytest.raises(sl.ServingLinkError, match='more than once'):
        doc.set(('use_registry',), True)


@pytest.mark.parametrize('text', [
    "zk: &zk {hosts: [a]}\nzookeeper: *zk\n",
    "zookeeper:\n  password: !!str fate\n",
    "zookeeper:\n  password: |\n    fate\n",
])
def test_anchors_tags_and_block_scalars_are_refused(text):
    doc = sl.YamlDocument(text, 'x.yaml')
    with pytest.raises(sl.ServingLinkError):
        doc.set(('zookeeper', 'password'), 'n3w')
        doc.validate()


def test_validation_catches_an_edit_that_touches_other_keys():
    doc = sl.YamlDocument(SERVICE_CONF_16, 'x.yaml')
    doc.set(('use_registry',), True)
    doc.text = doc.text.replace('work_mode: 1', 'work_mode: 0')
    with pytest.raises(sl.ServingLinkError, match='more than the serving link keys'):
        doc.validate()


def test_byte_order_mark_is_kept():
    text = "\ufeffuse_registry: false\nservings:\n  hosts: []\n"
    assert _edit(text, [(('use_registry',), True)]) == "\ufeffuse_registry: true\nservings:\n  hosts: []\n"


def test_key_the_text_search_cannot_find_is_refused_not_duplicated():
    doc = sl.YamlDocument("? use_registry\n: false\nx: 1\n", 'odd.yaml')
    with pytest.raises(sl.ServingLinkError, match='cannot locate use_registry'):
        doc.set(('use_registry',), True)


def test_quoted_keys_with_escapes_are_found():
    text = '"use_\\x72egistry": false\n\'zookeeper\':\n  "hosts": [a:1]\n'
    assert _edit(text, [(('use_registry',), True), (('zookeeper', 'hosts'), ['b:2'])]) == (
        '"use_\\x72egistry": true\n\'zookeeper\':\n  "hosts": [b:2]\n')


def test_value_that_is_not_a_mapping_is_refused():
    doc = sl.YamlDocument("zookeeper: localhost\n", 'x.yaml')
    with pytest.raises(sl.ServingLinkError, match='not a mapping'):
        doc.set(('zookeeper', 'hosts'), ['a:1'])


# ------------------------------------------------------------------------------------------------ JSON (FATE 1.4 server_conf.json)

def _json_edit(text, path, value):
    doc = sl.JsonDocument(text, 'server_conf.json')
    doc.set(path, value)
    doc.validate()
    return doc.text


def test_server_conf_servings_multiline():
    after = _json_edit(SERVER_CONF_14, ('servers', 'servings'), ['10.0.0.5:8000', '10.0.0.6:8000'])
    assert after == _replace_once(SERVER_CONF_14, '"servings": [\n            "127.0.0.1:8000"\n        ]',
                                  '"servings": [\n            "10.0.0.5:8000",\n            "10.0.0.6:8000"\n        ]')


def test_server_conf_servings_empty_and_back():
    empty = _json_edit(SERVER_CONF_14, ('servers', 'servings'), [])
    assert empty == _replace_once(SERVER_CONF_14, '"servings": [\n            "127.0.0.1:8000"\n        ]',
                                  '"servings": []')
    assert _json_edit(empty, ('servers', 'servings'), ['127.0.0.1:8000']) == SERVER_CONF_14


def test_server_conf_compact_and_odd_spacing():
    text = '{"servers":{"fateflow" : {"host":"h","http.port":9380} ,"servings":[ "a:1" ] },"x":[1,2]}'
    after = _json_edit(text, ('servers', 'servings'), ['b:2', 'c:3'])
    assert after == '{"servers":{"fateflow" : {"host":"h","http.port":9380} ,"servings":["b:2", "c:3"] },"x":[1,2]}'


def test_server_conf_missing_servings_is_added():
    text = ('{\n  "servers": {\n    "fateflow": {\n      "host": "h"\n    },\n'
            '    "proxy": {"host": "p", "port": 9370}\n  }\n}\n')
    after = _json_edit(text, ('servers', 'servings'), ['a:1'])
    assert after == ('{\n  "servers": {\n    "fateflow": {\n      "host": "h"\n    },\n'
                     '    "proxy": {"host": "p", "port": 9370},\n    "servings": [\n      "a:1"\n    ]\n  }\n}\n')


def test_server_conf_crlf_and_escapes():
    text = SERVER_CONF_14.replace('"localhost"', '"local\\u0068ost"').replace('\n', '\r\n')
    after = _json_edit(text, ('servers', 'servings'), ['a:1', 'b:2'])
    assert after == _replace_once(text, '"servings": [\r\n            "127.0.0.1:8000"\r\n        ]',
                                  '"servings": [\r\n            "a:1",\r\n            "b:2"\r\n        ]')


@pytest.mark.parametrize('text, message', [
    ('{"servers": {"servings": ["a"],}}', 'not valid JSON'),
    ('{"servers": ', 'not valid JSON'),
    ('["a"]', 'JSON object'),
    ('{"servers": {"servings": ["a"]}, "servers": {"servings": []}}', 'more than once'),
])
def test_json_refusals(text, message):
    with pytest.raises(sl.ServingLinkError, match=message):
        _json_edit(text, ('servers', 'servings'), ['b:1'])


# ------------------------------------------------------------------------------------------------ layout and plan

def _home(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def test_detect_layout(tmp_path):
    home = _home(tmp_path / 'a', {'conf/service_conf.yaml': SERVICE_CONF_16, 'fate.env': 'FATE=1.6.1\nFATEFlow=1.6.1\n'})
    assert sl.detect_layout(home) == ('service_conf', (1, 6, 1), 'fate.env')
    home = _home(tmp_path / 'b', {'arch/conf/server_conf.json': SERVER_CONF_14, 'arch/conf/base_conf.yaml': BASE_CONF_145})
    assert sl.detect_layout(home) == ('arch_conf', None, 'layout')
    assert sl.detect_layout(home, '1.4.5') == ('arch_conf', (1, 4, 5), 'fate_version')
    assert sl.detect_layout(home, 'v1.11')[0] == 'service_conf'
    with pytest.raises(sl.ServingLinkError, match='not supported'):
        sl.detect_layout(home, '2.0.0')
    with pytest.raises(sl.ServingLinkError, match='cannot read a FATE version'):
        sl.detect_layout(home, 'latest')
    home = _home(tmp_path / 'c', {'arch/conf/server_conf.json': SERVER_CONF_14, 'arch/conf/base_conf.yaml': BASE_CONF_145,
                                  'conf/service_conf.yaml': SERVICE_CONF_16})
    with pytest.raises(sl.ServingLinkError, match='both'):
        sl.detect_layout(home)
    with pytest.raises(sl.ServingLinkError, match='cannot tell'):
        sl.detect_layout(_home(tmp_path / 'd', {'README': ''}))
    with pytest.raises(sl.ServingLinkError, match='not a directory'):
        sl.detect_layout(str(tmp_path / 'nowhere'))


def test_plan_mode_a_and_b_on_service_conf():
    data = {'conf/service_conf.yaml': yaml.safe_load(SERVICE_CONF_16)}
    plan = sl.plan_changes('service_conf', data, 'servings', servings=['127.0.0.1:8000'])
    assert plan == {}
    plan = sl.plan_changes('service_conf', data, 'servings', servings=['a:1'])
    assert plan == {'conf/service_conf.yaml': [(('servings', 'hosts'), ['a:1'])]}
    zk = {'hosts': ['127.0.0.1:2181'], 'use_acl': True, 'user': 'fate', 'password': 'x'}
    plan = sl.plan_changes('service_conf', data, 'zookeeper', zookeeper=zk)
    assert plan == {'conf/service_conf.yaml': [(('use_registry',), True), (('zookeeper', 'use_acl'), True),
                                               (('zookeeper', 'password'), 'x')]}
    # user/password left out: left as they are
    zk = {'hosts': ['127.0.0.1:2181'], 'use_acl': False, 'user': None, 'password': None}
    assert sl.plan_changes('service_conf', data, 'zookeeper', zookeeper=zk) == {
        'conf/service_conf.yaml': [(('use_registry',), True)]}


def test_plan_registry_string_and_missing_use_registry():
    data = {'conf/service_conf.yaml': {'use_registry': 'zookeeper', 'zookeeper': {'hosts': ['z:1'], 'use_acl': False},
                                       'servings': ['a:1']}}
    zk = {'hosts': ['z:1'], 'use_acl': False}
    assert sl.plan_changes('service_conf', data, 'zookeeper', zookeeper=zk, version=(1, 11)) == {}
    assert sl.plan_changes('service_conf', data, 'zookeeper', zookeeper=zk, version=(1, 6)) == {
        'conf/service_conf.yaml': [(('use_registry',), True)]}
    # servings as a list stays a list; use_registry "zookeeper" is on, so mode A turns it off
    assert sl.plan_changes('service_conf', data, 'servings', servings=['b:2'], version=(1, 11)) == {
        'conf/service_conf.yaml': [(('servings',), ['b:2']), (('use_registry',), False)]}
    # no use_registry at all means off: mode A adds nothing
    data = {'conf/service_conf.yaml': {'servings': {'hosts': ['a:1']}}}
    assert sl.plan_changes('service_conf', data, 'servings', servings=['a:1']) == {}


def test_plan_on_14_layout():
    data = {'arch/conf/server_conf.json': json.loads(SERVER_CONF_14), 'arch/conf/base_conf.yaml': yaml.safe_load(BASE_CONF_145)}
    assert sl.plan_changes('arch_conf', data, 'servings', servings=['a:1']) == {
        'arch/conf/server_conf.json': [(('servers', 'servings'), ['a:1'])]}
    zk = {'hosts': ['127.0.0.1:2281'], 'use_acl': True, 'user': 'fate', 'password': 'fate'}
    assert sl.plan_changes('arch_conf', data, 'zookeeper', zookeeper=zk) == {
        'arch/conf/base_conf.yaml': [(('use_registry',), True)]}


@pytest.mark.parametrize('files, mode, kwargs', [
    ({'conf/service_conf.yaml': SERVICE_CONF_16, 'fate.env': 'FATE=1.6.1\n'}, 'servings', {'servings': ['a:1', 'b:2']}),
    ({'conf/service_conf.yaml': SERVICE_CONF_111, 'fate.env': 'FATE=1.11.4\n'}, 'zookeeper',
     {'zookeeper': {'hosts': ['z:1'], 'use_acl': True, 'user': 'fate', 'password': 'pw1'}}),
    ({'arch/conf/server_conf.json': SERVER_CONF_14, 'arch/conf/base_conf.yaml': BASE_CONF_145}, 'servings',
     {'servings': ['a:1']}),
    ({'arch/conf/server_conf.json': SERVER_CONF_14, 'arch/conf/base_conf.yaml': BASE_CONF_145}, 'zookeeper',
     {'zookeeper': {'hosts': ['z:1', 'z:2'], 'use_acl': True, 'user': 'u', 'password': 'pw1'}}),
])
def test_prepare_is_idempotent(tmp_path, files, mode, kwargs):
    home = _home(tmp_path, files)
    first = sl.prepare(home, mode, **kwargs)
    changed = [info for info in first['files'].values() if info['before'] != info['after']]
    assert changed
    for info in changed:
        with open(info['path'], 'w') as handle:
            handle.write(info['after'])
    second = sl.prepare(home, mode, **kwargs)
    assert all(info['before'] == info['after'] for info in second['files'].values())


def test_switching_modes(tmp_path):
    home = _home(tmp_path, {'conf/service_conf.yaml': SERVICE_CONF_16, 'fate.env': 'FATE=1.6.1\n'})
    path = os.path.join(home, 'conf/service_conf.yaml')
    zk = {'hosts': ['z:1'], 'use_acl': True, 'user': 'fate', 'password': 'pw1'}
    prepared = sl.prepare(home, 'zookeeper', zookeeper=zk)
    with open(path, 'w') as handle:
        handle.write(prepared['files']['conf/service_conf.yaml']['after'])
    prepared = sl.prepare(home, 'servings', servings=['127.0.0.1:8000'])
    info = prepared['files']['conf/service_conf.yaml']
    assert info['changes'] == ['use_registry']
    data = yaml.safe_load(info['after'])
    assert data['use_registry'] is False
    assert data['zookeeper'] == {'hosts': ['z:1'], 'use_acl': True, 'user': 'fate', 'password': 'pw1'}


def test_diff_masks_the_password(tmp_path):
    home = _home(tmp_path, {'conf/service_conf.yaml': SERVICE_CONF_16.replace('password: fate', 'password: OldSecret9'),
                            'fate.env': 'FATE=1.6.1\n'})
    zk = {'hosts': ['z:1'], 'use_acl': True, 'user': 'fate', 'password': 'NewSecret7'}
    prepared = sl.prepare(home, 'zookeeper', zookeeper=zk)
    diff = sl.diff_for(prepared)
    assert len(diff) == 1
    text = json.dumps(diff)
    assert 'OldSecret9' not in text and 'NewSecret7' not in text
    assert '  password: ********\n' in diff[0]['before']
    assert '  password: ******** (changed)\n' in diff[0]['after']
    assert 'NewSecret7' in prepared['files']['conf/service_conf.yaml']['after']


def test_local_override_warns(tmp_path):
    home = _home(tmp_path, {'conf/service_conf.yaml': SERVICE_CONF_111, 'fate.env': 'FATE=1.11.4\n',
                            'conf/local.service_conf.yaml': 'servings:\n  hosts: [x:1]\n'})
    prepared = sl.prepare(home, 'servings', servings=['a:1'])
    assert prepared['warnings'] and 'local.service_conf.yaml' in prepared['warnings'][0]


def test_missing_file_is_refused(tmp_path):
    home = _home(tmp_path, {'arch/conf/server_conf.json': SERVER_CONF_14})
    with pytest.raises(sl.ServingLinkError, match='not found'):
        sl.prepare(home, 'servings', servings=['a:1'], fate_version='1.4.5')


def test_not_utf8_is_refused(tmp_path):
    home = _home(tmp_path, {'fate.env': 'FATE=1.6.1\n'})
    os.makedirs(os.path.join(home, 'conf'))
    with open(os.path.join(home, 'conf/service_conf.yaml'), 'wb') as handle:
        handle.write(b'servings:\n  hosts: [\xff]\n')
    with pytest.raises(sl.ServingLinkError, match='UTF-8'):
        sl.prepare(home, 'servings', servings=['a:1'])
