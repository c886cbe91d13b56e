#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: serving_link
short_description: Point a FATE Flow at its FATE-Serving servers, in place in its config files
version_added: 0.1.0
description:
  - Sets how the FATE Flow of a FATE 1.x install finds FATE-Serving, in the config file(s) of the install under
    O(fate_home), and changes nothing else.
  - Either a fixed list of servings (O(servings)), which also turns C(use_registry) off, or ZooKeeper
    (O(zookeeper)), which turns C(use_registry) on and writes the C(zookeeper) section FATE Flow connects with.
  - FATE 1.4 keeps the servings in C(arch/conf/server_conf.json) (C(servers.servings)) and C(use_registry) and
    C(zookeeper) in C(arch/conf/base_conf.yaml); FATE 1.5 to 1.11 keep all of them in C(conf/service_conf.yaml)
    (C(servings.hosts), C(use_registry), C(zookeeper)). The module detects the release from the install (see
    O(fate_version)).
  - The files are edited in place, by text. Every other key, the key order, the comments, quoting and line endings
    stay as they are, byte for byte. After the edit the module parses the new text and compares it with the old
    data; if anything other than the keys it owns would change, or a file is not valid JSON or YAML, it fails and
    writes nothing.
  - FATE Flow reads these keys when it starts. RV(restart_required) says when it must be restarted; the
    C(fate.flow.flow_restart) role does that, waits until FATE Flow is healthy, and restores RV(backup_files) if it
    is not.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  fate_home:
    description:
      - The FATE install (project base) on the target host, for example C(/data/projects/fate).
    type: path
    required: true
  fate_version:
    description:
      - The FATE release of the install, for example V(1.6.1) or V(1.11).
      - When left out, the module reads C(FATE=) from C(<fate_home>/fate.env) (FATE 1.5+), and otherwise tells the
        release from the files present (C(conf/service_conf.yaml) for 1.5+, C(arch/conf/server_conf.json) and
        C(arch/conf/base_conf.yaml) for 1.4).
      - FATE 2.x is refused.
    type: str
  servings:
    description:
      - Mode A. The FATE-Serving servers (C(ip:port) of their gRPC port) FATE Flow publishes models to.
      - Writes them as the servings list and sets C(use_registry) to false. The C(zookeeper) section is left as it
        is.
      - An empty list is written as it is; FATE Flow then answers load and bind with C(Please configure servings
        address).
      - Exactly one of O(servings) and O(zookeeper) is required.
    type: list
    elements: str
  zookeeper:
    description:
      - Mode B. FATE Flow finds the servings registered in ZooKeeper, under
        C(/FATE-SERVICES/serving/online/publishLoad/providers).
      - Sets C(use_registry) to true and writes C(zookeeper.hosts) and C(zookeeper.use_acl), and C(zookeeper.user)
        and C(zookeeper.password) when given. The servings list is left as it is (FATE Flow ignores it then).
      - A wrong password or an unreachable ZooKeeper makes FATE Flow fail at its next start.
    type: dict
    suboptions:
      hosts:
        description: The ZooKeeper servers, C(host:port).
        type: list
        elements: str
        required: true
      use_acl:
        description: Authenticate with a digest C(user:password) and create nodes with that digest ACL.
        type: bool
        default: false
      user:
        description: The digest user. Required when O(zookeeper.use_acl=true).
        type: str
      password:
        description:
          - The digest password. Required when O(zookeeper.use_acl=true).
          - Never shown in results or diffs; the diff masks the password already in the file too.
        type: str
  backup:
    description:
      - Before changing a file, copy it to C(<file>.<pid>.<timestamp>~) next to it, with its owner and mode.
      - On by default (unlike most file modules), because the C(fate.flow.flow_restart) role restores these copies
        when FATE Flow does not come back after the change. The copies hold the ZooKeeper password like the file
        does; remove them when no longer needed.
    type: bool
    default: true
requirements:
  - PyYAML on the host that runs the module (the FATE host; FATE itself needs it).
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing any file.
    support: full
  diff_mode:
    description:
      - Returns the old and new text of each changed file when run with C(--diff), with the ZooKeeper password
        masked in both.
    support: full
  idempotent:
    description: A second run with the same options changes nothing and reports C(changed=false).
    support: full
notes:
  - The files are written atomically (a temporary file in the same directory, then a rename), keeping their owner,
    group and mode.
  - Comment lines between the items of a list the module rewrites are dropped with the old items; comments
    everywhere else stay.
  - FATE Flow 1.7+ reads C(conf/local.service_conf.yaml) on top of C(conf/service_conf.yaml); the module warns when
    that file sets one of the keys it writes.
seealso:
  - module: fate.flow.serving_registry_info
  - name: The serving link guide
    description: docs/serving_link.md in the collection.
    link: https://example.invalid/fate/flow/docs/serving_link.md
'''

EXAMPLES = r'''
- name: Let FATE Flow publish to two FATE-Serving servers
  fate.flow.serving_link:
    fate_home: /data/projects/fate
    servings:
      - 192.168.0.5:8000
      - 192.168.0.6:8000
  register: link
  notify: Restart FATE Flow

- name: Let FATE Flow find FATE-Serving in ZooKeeper (digest ACL)
  fate.flow.serving_link:
    fate_home: /data/projects/fate
    fate_version: 1.11.4
    zookeeper:
      hosts:
        - 192.168.0.10:2181
        - 192.168.0.11:2181
      use_acl: true
      user: fate
      password: "{{ vault_zookeeper_password }}"
  register: link

- name: Restart FATE Flow, wait until it is healthy, roll back if it is not
  ansible.builtin.include_role:
    name: fate.flow.flow_restart
  vars:
    flow_restart_needed: "{{ link.restart_required }}"
    flow_restart_backup_files: "{{ link.backup_files }}"
    flow_restart_flow_url: http://192.168.0.2:9380
    flow_restart_fate_version: "{{ link.fate_version }}"
'''

RETURN = r'''
mode:
  description: V(servings) (mode A) or V(zookeeper) (mode B).
  returned: always
  type: str
  sample: zookeeper
restart_required:
  description: A key FATE Flow reads at start changed (or would change, in check mode).
  returned: always
  type: bool
  sample: true
config_files:
  description: The config files that hold the serving link in this install.
  returned: always
  type: list
  elements: str
  sample: [/data/projects/fate/conf/service_conf.yaml]
changed_files:
  description: The config files that were changed (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/data/projects/fate/conf/service_conf.yaml]
changed_keys:
  description: The keys that were set, per changed file.
  returned: always
  type: dict
  sample: {"/data/projects/fate/conf/service_conf.yaml": ["use_registry", "zookeeper.hosts"]}
backup_file:
  description: The backup of the first changed file (see RV(backup_files) for all).
  returned: when a file was changed and O(backup=true)
  type: str
  sample: /data/projects/fate/conf/service_conf.yaml.2471.2026-11-23@15:02:11~
backup_files:
  description:
    - One entry per backed-up file, C(src) the backup and C(dest) the config file, the shape the
      C(fate.flow.flow_restart) role takes in C(flow_restart_backup_files) to roll back. Empty when nothing changed.
  returned: always
  type: list
  elements: dict
  sample: [{"src": "/data/projects/fate/conf/service_conf.yaml.2471.2026-11-23@15:02:11~",
            "dest": "/data/projects/fate/conf/service_conf.yaml"}]
layout:
  description: V(arch_conf) (FATE 1.4 files) or V(service_conf) (FATE 1.5 to 1.11).
  returned: always
  type: str
  sample: service_conf
fate_version:
  description:
    - The FATE release as given in O(fate_version) or as read from C(fate.env); V(1.4) for an install with the
      FATE 1.4 files and no C(fate.env); empty when only the presence of C(conf/service_conf.yaml) told the layout.
  returned: always
  type: str
  sample: 1.11.4
servings:
  description: The servings list as configured now (mode A).
  returned: when O(servings) is given
  type: list
  elements: str
  sample: [192.168.0.5:8000]
zookeeper_hosts:
  description: The ZooKeeper servers as configured now (mode B).
  returned: when O(zookeeper) is given
  type: list
  elements: str
  sample: [192.168.0.10:2181]
'''

import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.fate.flow.plugins.module_utils import _serving_link as sl


def argument_spec():
    return dict(
        fate_home=dict(type='path', required=True),
        fate_version=dict(type='str'),
        servings=dict(type='list', elements='str'),
        zookeeper=dict(type='dict', options=dict(
            hosts=dict(type='list', elements='str', required=True),
            use_acl=dict(type='bool', default=False),
            user=dict(type='str'),
            password=dict(type='str', no_log=True),
        ), required_if=[('use_acl', True, ('user', 'password'))]),
        backup=dict(type='bool', default=True),
    )


def write_atomically(module, path, text):
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path`` (owner and mode kept)."""
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(to_bytes(text, errors='surrogate_or_strict'))
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def release_of(fate_version, prepared, fate_home):
    """The FATE release as given, or from fate.env, or '1.4' for a 1.4 layout; '' when unknown."""
    if fate_version:
        return fate_version
    if prepared['detected_by'] == 'fate.env':
        return sl.read_fate_env(fate_home) or ''
    return '1.4' if prepared['layout'] == 'arch_conf' else ''


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('servings', 'zookeeper')],
        required_one_of=[('servings', 'zookeeper')],
        supports_check_mode=True,
    )
    if not sl.HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML'), exception=sl.YAML_IMPORT_ERROR)
    params = module.params
    mode = 'servings' if params['servings'] is not None else 'zookeeper'
    fate_home = params['fate_home']
    try:
        prepared = sl.prepare(fate_home, mode, servings=params['servings'], zookeeper=params['zookeeper'],
                              fate_version=params['fate_version'])
    except sl.ServingLinkError as exc:
        module.fail_json(msg=str(exc), fate_home=fate_home, mode=mode, changed=False)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='cannot edit the serving link in %s (nothing was written): %s' % (fate_home, exc),
                         exception=traceback.format_exc(), fate_home=fate_home, mode=mode, changed=False)

    for warning in prepared['warnings']:
        module.warn(warning)
    files = prepared['files']
    changed_files = [info['path'] for rel, info in sorted(files.items()) if info['before'] != info['after']]
    result = dict(
        changed=bool(changed_files),
        restart_required=bool(changed_files),
        mode=mode,
        layout=prepared['layout'],
        fate_version=release_of(params['fate_version'], prepared, fate_home),
        config_files=[info['path'] for rel, info in sorted(files.items())],
        changed_files=changed_files,
        changed_keys=dict((info['path'], info['changes']) for info in files.values() if info['changes']),
        backup_files=[],
    )
    if mode == 'servings':
        result['servings'] = list(params['servings'])
    else:
        result['zookeeper_hosts'] = list(params['zookeeper']['hosts'])
    if module._diff and changed_files:
        result['diff'] = sl.diff_for(prepared)

    if changed_files and not module.check_mode:
        for rel, info in sorted(files.items()):
            if info['before'] == info['after']:
                continue
            try:
                if params['backup']:
                    backup = module.backup_local(info['path'])
                    result['backup_files'].append({'src': backup, 'dest': info['path']})
                write_atomically(module, info['path'], info['after'])
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_json(msg='cannot write %s: %s' % (info['path'], exc), exception=traceback.format_exc(),
                                 **result)
        if result['backup_files']:
            result['backup_file'] = result['backup_files'][0]['src']
    module.exit_json(**result)


if __name__ == '__main__':
    main()
