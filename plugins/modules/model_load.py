#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_load
short_description: Publish a FATE model to FATE-Serving
version_added: 0.1.0
description:
  - Asks the initiator's FATE Flow to load a model into FATE-Serving (C(POST /v1/model/load)). FATE Flow sends the
    load to every guest and host party (not the arbiter), and each party's FATE Flow calls its own FATE-Serving.
  - Every party's result is checked and returned; any failed party fails the task with its message.
  - Party ids are always sent as strings, which every FATE Flow release accepts (1.5 to 1.7.0 fail on integers).
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  model_id:
    description: The model id.
    type: str
    required: true
  model_version:
    description: The model version; on FATE Flow 1.5.1+ a deployed version (see M(fate.flow.model_deploy)).
    type: str
    required: true
  role:
    description:
      - 'The parties of the model, C({guest: [99], host: [100], arbiter: [100]}).'
    type: dict
    required: true
  initiator:
    description:
      - 'The initiating party, C({role: guest, party_id: 99}). It must be the party of O(flow_url).'
      - Defaults to the first guest of O(role).
    type: dict
  federated_mode:
    description:
      - V(MULTIPLE) sends each party's load to that party's FATE Flow; V(SINGLE) runs them all on the FATE Flow of
        O(flow_url).
      - By default FATE Flow 1.7+ choose V(SINGLE) for standalone deployments and V(MULTIPLE) otherwise; FATE Flow 1.4
        to 1.6 derive it from O(work_mode).
    type: str
    choices: [SINGLE, MULTIPLE]
  work_mode:
    description:
      - FATE 1.4 to 1.6 only (sent only to them; later releases have no work mode). V(0) is standalone, V(1) cluster.
      - Defaults to V(0) when O(federated_mode=SINGLE), else V(1).
    type: int
    choices: [0, 1]
  job_parameters:
    description:
      - 'More C(job_parameters) to send, for example C({use_transfer_url_on_serving: true}) or C({load_type: FATEFLOW}).'
      - O(model_id), O(model_version), O(federated_mode) and O(work_mode) take precedence.
    type: dict
    default: {}
  skip_if_loaded:
    description:
      - Do nothing (C(changed=false)) when the FATE Flow of O(flow_url) records the model as loaded
        (C(loaded_times) above 0) for the initiator and for every other guest or host party it knows.
      - FATE Flow counts loads, it cannot see what FATE-Serving holds now; a restarted serving forgets its models.
        So this is off by default and every run loads again.
      - Needs FATE Flow 1.5.1+ (model query).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: On FATE Flow 1.5.1+ checks that the initiator's model exists and is deployed, and reports
      C(changed=true) without loading.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Loading the same model again is harmless (serving replaces it) but is reported as C(changed=true), unless
      O(skip_if_loaded=true).
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
seealso:
  - module: fate.flow.model_deploy
  - module: fate.flow.model_bind
'''

EXAMPLES = r'''
- name: Load the migrated model on the destination federation
  fate.flow.model_load:
    flow_url: http://127.0.10.3:9380
    model_id: arbiter-100#guest-99#host-100#model
    model_version: "20200901_0001"
    role: {guest: [99], host: [100], arbiter: [100]}
  register: loaded
  delegate_to: localhost

- name: Show each party's answer
  ansible.builtin.debug:
    msg: "{{ loaded.parties | map(attribute='retmsg') | list }}"
'''

RETURN = r'''
job_id:
  description: The job id of the load.
  returned: when a load was submitted
  type: str
  sample: "202111091127392613050"
parties:
  description: The result of every guest and host party.
  returned: when a load was submitted
  type: list
  elements: dict
  contains:
    role:
      description: The role.
      type: str
    party_id:
      description: The party id.
      type: str
    retcode:
      description: The party's retcode (0 is success).
      type: int
    retmsg:
      description: The party's message.
      type: str
  sample: [{"role": "guest", "party_id": "99", "retcode": 0, "retmsg": "success"}]
status:
  description: V(loaded), V(already_loaded) (with O(skip_if_loaded)) or V(would_load).
  returned: always
  type: str
  sample: loaded
loaded_times:
  description: C(loaded_times) per C(<role>#<party_id>) as the FATE Flow of O(flow_url) recorded it before the task.
  returned: when the module queried it (check mode or O(skip_if_loaded), FATE Flow 1.5.1+)
  type: dict
  sample: {"guest#99": 1}
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    fail_from_error,
    flow_module_kwargs,
    parse_version,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    ModelSpecError,
    check_model_names,
    iter_parties,
    normalize_party,
    normalize_role_map,
)


def _needs_deploy(row):
    """FATE's deployed-check: a DSL-v2 parent model written by FATE > 1.5.0 must be deployed first."""
    if not row.get('parent'):
        return False
    fate = parse_version(row.get('fate_version'))
    if fate is None or fate <= (1, 5, 0):
        return False
    conf = row.get('train_runtime_conf')
    if isinstance(conf, str):
        try:
            conf = json.loads(conf)
        except ValueError:
            conf = {}
    return str((conf or {}).get('dsl_version', '1')) != '1'


def build_payload(params, caps, roles, initiator):
    job_parameters = dict(params['job_parameters'] or {})
    job_parameters.update(model_id=params['model_id'], model_version=params['model_version'])
    if params['federated_mode']:
        job_parameters['federated_mode'] = params['federated_mode']
    if caps.load_needs_work_mode:
        work_mode = params['work_mode']
        if work_mode is None:
            work_mode = job_parameters.get('work_mode', 0 if params['federated_mode'] == 'SINGLE' else 1)
        job_parameters['work_mode'] = work_mode
    else:
        job_parameters.pop('work_mode', None)
    return dict(initiator=initiator, role=roles, job_parameters=job_parameters)


def validate(params):
    roles = normalize_role_map(params['role'], 'role', int_ids=False)
    if 'guest' not in roles and not params['initiator']:
        raise ModelSpecError('role has no guest: set initiator')
    initiator = normalize_party(params['initiator'] or {'role': 'guest', 'party_id': roles['guest'][0]},
                                'initiator', roles, int_ids=False)
    return roles, initiator


def run(module, client, roles, initiator):
    params = module.params
    expected = list(iter_parties(roles, skip_roles=('arbiter',)))
    result = dict(changed=True, model_id=params['model_id'], model_version=params['model_version'])

    caps = client.capabilities
    if (module.check_mode or params['skip_if_loaded']) and not caps.supports_query:
        if params['skip_if_loaded']:
            raise FlowError('skip_if_loaded needs the model query of FATE Flow 1.5.1+; FATE Flow %s has none.'
                            % caps.flow_version, reason=FlowError.UNSUPPORTED)
    elif module.check_mode or params['skip_if_loaded']:
        loaded = {}
        for name, pid in expected:
            row = client.find_model(params['model_id'], params['model_version'], name, pid)
            if row is None:
                if (name, pid) == (initiator['role'], initiator['party_id']):
                    raise FlowError(
                        'Model %s %s is not on the initiator %s %s (FATE Flow at %s).'
                        % (params['model_id'], params['model_version'], name, pid, client.base_url),
                        endpoint='/v1/model/query', reason=FlowError.NOT_FOUND,
                        hint='Import it there first (fate.flow.model_import), or check model_id and model_version.')
                continue
            if module.check_mode and caps.load_requires_deployed and _needs_deploy(row):
                raise FlowError('Model %s %s of %s %s is a trained model that was not deployed.'
                                % (params['model_id'], params['model_version'], name, pid),
                                endpoint='/v1/model/query', reason=FlowError.PRECONDITION,
                                hint='Deploy it first (fate.flow.model_deploy) and load the deployed child version.')
            loaded['%s#%s' % (name, pid)] = int(row.get('loaded_times') or 0)
        result['loaded_times'] = loaded
        if params['skip_if_loaded'] and loaded and all(count > 0 for count in loaded.values()):
            result.update(changed=False, status='already_loaded')
            return result

    if module.check_mode:
        result['status'] = 'would_load'
        return result

    payload = build_payload(params, caps, roles, initiator)
    body, parties = client.load(payload, expected)
    result.update(status='loaded', job_id=body.get('jobId'),
                  parties=[dict(role=p['role'], party_id=str(p['party_id']), retcode=p['retcode'], retmsg=p['retmsg'])
                           for p in parties])
    return result


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            model_id=dict(type='str', required=True),
            model_version=dict(type='str', required=True),
            role=dict(type='dict', required=True),
            initiator=dict(type='dict'),
            federated_mode=dict(type='str', choices=['SINGLE', 'MULTIPLE']),
            work_mode=dict(type='int', choices=[0, 1]),
            job_parameters=dict(type='dict', default={}),
            skip_if_loaded=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    ))
    try:
        check_model_names(module.params, 'model_id', 'model_version')
        roles, initiator = validate(module.params)
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    client = FlowClient(module)
    try:
        result = run(module, client, roles, initiator)
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
