#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_bind
short_description: Bind a FATE-Serving service id to a loaded model
version_added: 0.1.0
description:
  - Asks the initiator's FATE Flow to bind a service id to the initiator's copy of a model in FATE-Serving
    (C(POST /v1/model/bind)), so that online inference requests for that service id use the model.
  - The model must have been loaded first (M(fate.flow.model_load)); FATE-Serving refuses otherwise (code 104).
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  service_id:
    description:
      - The service id inference requests will name. Must not be empty and must not contain C(?), C(:), C(/) or C(&)
        (FATE-Serving refuses those).
    type: str
    required: true
  model_id:
    description: The model id.
    type: str
    required: true
  model_version:
    description: The model version that was loaded.
    type: str
    required: true
  role:
    description: 'The parties of the model, C({guest: [99], host: [100], arbiter: [100]}).'
    type: dict
    required: true
  initiator:
    description:
      - 'The party whose serving gets the binding, C({role: guest, party_id: 99}). It must be the party of O(flow_url).'
      - Defaults to the first guest of O(role).
    type: dict
  servings:
    description:
      - FATE-Serving addresses (C(host:port)) to bind on. By default the FATE Flow uses the servings of its own
        configuration (or ZooKeeper).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Validates the options and reports C(changed=true) without binding.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Binding the same service id to the same model again is harmless, but FATE Flow cannot tell which model a
      service id is bound to, so every run binds and reports C(changed=true).
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
seealso:
  - module: fate.flow.model_load
'''

EXAMPLES = r'''
- name: Bind the service id used by the inference clients
  fate.flow.model_bind:
    flow_url: http://127.0.10.3:9380
    service_id: credit-scoring
    model_id: arbiter-100#guest-99#host-100#model
    model_version: "20200901_0001"
    role: {guest: [99], host: [100], arbiter: [100]}
  delegate_to: localhost
'''

RETURN = r'''
service_id:
  description: The bound service id.
  returned: always
  type: str
  sample: credit-scoring
retmsg:
  description: FATE Flow's answer.
  returned: when bound
  type: str
  sample: service id is credit-scoring
status:
  description: V(bound) or V(would_bind).
  returned: always
  type: str
  sample: bound
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    fail_from_error,
    flow_module_kwargs,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    ModelSpecError,
    check_model_names,
    check_name,
    normalize_party,
    normalize_role_map,
)

_FORBIDDEN = ('?', ':', '/', '&')
_SERVING_RE = re.compile(r'^[^\s:/]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$')


def validate(params):
    service_id = (params['service_id'] or '').strip()
    if not service_id:
        raise ModelSpecError('service_id must not be empty')
    bad = [c for c in _FORBIDDEN if c in service_id]
    if bad:
        raise ModelSpecError('service_id %r contains %s, which FATE-Serving refuses (no ?, :, / or &)'
                             % (service_id, ' '.join(bad)))
    check_name(service_id, 'service_id')
    check_model_names(params, 'model_id', 'model_version')
    for address in params['servings'] or []:
        if not _SERVING_RE.match(address):
            raise ModelSpecError('servings entry %r is not a host:port address' % address)
    roles = normalize_role_map(params['role'], 'role', int_ids=False)
    if 'guest' not in roles and not params['initiator']:
        raise ModelSpecError('role has no guest: set initiator')
    initiator = normalize_party(params['initiator'] or {'role': 'guest', 'party_id': roles['guest'][0]},
                                'initiator', roles, int_ids=False)
    return service_id, roles, initiator


def run(module, client, service_id, roles, initiator):
    params = module.params
    result = dict(changed=True, service_id=service_id, model_id=params['model_id'],
                  model_version=params['model_version'])
    client.ensure_supported()
    if module.check_mode:
        result['status'] = 'would_bind'
        return result
    payload = dict(service_id=service_id, initiator=initiator, role=roles,
                   job_parameters=dict(model_id=params['model_id'], model_version=params['model_version']))
    if params['servings']:
        payload['servings'] = params['servings']
    try:
        body = client.bind(payload)
    except FlowError as exc:
        if exc.retcode == 104:
            exc.hint = ('FATE-Serving has no loaded model %s %s for %s %s: load the model first (fate.flow.model_load).'
                        % (params['model_id'], params['model_version'], initiator['role'], initiator['party_id']))
        elif exc.retcode == 110:
            exc.hint = 'FATE-Serving refused the binding; its message says why.'
        raise
    result.update(status='bound', retmsg=body.get('retmsg'))
    return result


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            service_id=dict(type='str', required=True),
            model_id=dict(type='str', required=True),
            model_version=dict(type='str', required=True),
            role=dict(type='dict', required=True),
            initiator=dict(type='dict'),
            servings=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    ))
    try:
        service_id, roles, initiator = validate(module.params)
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    client = FlowClient(module)
    try:
        result = run(module, client, service_id, roles, initiator)
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
