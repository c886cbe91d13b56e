#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: serving_registry_info
short_description: List the FATE-Serving servers registered in ZooKeeper
version_added: 0.1.0
description:
  - Reads, without changing anything, the FATE-Serving servers that registered themselves in ZooKeeper, the list a
    FATE Flow with C(use_registry) on publishes models to.
  - Lists the children of O(path) (by default C(/FATE-SERVICES/serving/online/publishLoad/providers)), URL-decodes
    them and reduces each to C(host:port), as FATE Flow does.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  hosts:
    description: The ZooKeeper servers, C(host:port).
    type: list
    elements: str
    required: true
  use_acl:
    description: Authenticate with the digest O(user) and O(password), as FATE Flow does with C(zookeeper.use_acl).
    type: bool
    default: false
  user:
    description: The digest user. Required when O(use_acl=true).
    type: str
  password:
    description: The digest password. Required when O(use_acl=true). Never returned.
    type: str
  path:
    description: The node whose children are the registered servings.
    type: str
    default: /FATE-SERVICES/serving/online/publishLoad/providers
  timeout:
    description: Seconds to wait for the connection to ZooKeeper.
    type: float
    default: 10
requirements:
  - kazoo on the host that runs the module.
attributes:
  check_mode:
    description: Only reads from ZooKeeper, so it behaves the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing.
    support: N/A
  idempotent:
    description: Changes nothing.
    support: full
notes:
  - The registrations are ephemeral nodes; a FATE-Serving that lost its ZooKeeper session is not listed.
seealso:
  - module: fate.flow.serving_link
'''

EXAMPLES = r'''
- name: The servings FATE Flow will find in ZooKeeper
  fate.flow.serving_registry_info:
    hosts:
      - 192.168.0.10:2181
    use_acl: true
    user: fate
    password: "{{ vault_zookeeper_password }}"
  register: registry

- name: Fail when no FATE-Serving is registered
  ansible.builtin.assert:
    that: registry.servings | length > 0
    fail_msg: No FATE-Serving is registered in ZooKeeper
'''

RETURN = r'''
servings:
  description: The registered servings, C(host:port), each once, in the order ZooKeeper listed them.
  returned: always
  type: list
  elements: str
  sample: [192.168.0.5:8000]
providers:
  description: The decoded node names (C(grpc://host:port/...)).
  returned: always
  type: list
  elements: str
  sample: ["grpc://192.168.0.5:8000/publishLoad?router_mode=ALL_ALLOWED&timestamp=1700000000000&version=216"]
path_exists:
  description: O(path) exists (false before any FATE-Serving registered).
  returned: always
  type: bool
  sample: true
'''

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from urllib.parse import unquote, urlparse

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException, NoAuthError
    from kazoo.handlers.threading import KazooTimeoutError
    HAS_KAZOO = True
    KAZOO_IMPORT_ERROR = None
except ImportError:
    HAS_KAZOO = False
    KAZOO_IMPORT_ERROR = traceback.format_exc()


def serving_address(name):
    """host:port of a provider node name (URL-encoded grpc://host:port/...), or None."""
    url = unquote(name)
    netloc = urlparse(url).netloc
    return netloc or None


def _close(client):
    try:
        client.stop()
        client.close()
    except Exception:  # pylint: disable=broad-except
        pass


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hosts=dict(type='list', elements='str', required=True),
            use_acl=dict(type='bool', default=False),
            user=dict(type='str'),
            password=dict(type='str', no_log=True),
            path=dict(type='str', default='/FATE-SERVICES/serving/online/publishLoad/providers'),
            timeout=dict(type='float', default=10),
        ),
        required_if=[('use_acl', True, ('user', 'password'))],
        supports_check_mode=True,
    )
    if not HAS_KAZOO:
        module.fail_json(msg=missing_required_lib('kazoo'), exception=KAZOO_IMPORT_ERROR)
    params = module.params
    hosts = ','.join(params['hosts'])
    auth = None
    if params['use_acl']:
        auth = [('digest', '%s:%s' % (params['user'], params['password']))]
    try:
        client = KazooClient(hosts=hosts, auth_data=auth, timeout=params['timeout'])
    except ValueError as exc:
        module.fail_json(msg='cannot use the ZooKeeper hosts %s: %s; give them as host:port' % (hosts, exc))
    try:
        client.start(timeout=params['timeout'])
    except KazooTimeoutError:
        _close(client)
        module.fail_json(msg='cannot connect to ZooKeeper %s within %s s: check that ZooKeeper runs there, that '
                         'hosts names its client port (host:port, usually 2181) and that this host can reach it; '
                         'nothing was changed' % (hosts, params['timeout']))
    try:
        path = params['path']
        exists = client.exists(path) is not None
        names = client.get_children(path) if exists else []
    except NoAuthError:
        module.fail_json(msg='ZooKeeper %s refused to list %s (NoAuth): the digest user or password is wrong, or '
                         'use_acl is off while the nodes carry a digest ACL; check use_acl, user and password '
                         '(FATE-Serving\'s acl.username and acl.password); nothing was changed'
                         % (hosts, params['path']))
    except KazooException as exc:
        module.fail_json(msg='cannot list %s in ZooKeeper %s: %s' % (params['path'], hosts, exc))
    finally:
        _close(client)
    providers = [unquote(name) for name in names]
    servings = []
    for name in names:
        address = serving_address(name)
        if address and address not in servings:
            servings.append(address)
    module.exit_json(changed=False, servings=servings, providers=providers, path_exists=exists)


if __name__ == '__main__':
    main()
