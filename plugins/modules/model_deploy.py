#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_deploy
short_description: Deploy a trained FATE model so that it can be loaded to serving
version_added: 0.1.0
description:
  - Deploys a trained (parent) model with C(POST /v1/model/deploy). FATE Flow copies it into a new child version with
    an inference DSL; FATE Flow 1.5.1+ load only such deployed models (DSL v2).
  - Returns the version to migrate or load, RV(model_version).
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  model_id:
    description: The model id.
    type: str
    required: true
  model_version:
    description: The version of the trained (parent) model.
    type: str
    required: true
  cpn_list:
    description:
      - The components to deploy (FATE's C(cpn_list)); by default FATE deploys every component that has a model.
    type: list
    elements: str
  predict_dsl:
    description:
      - A complete predict DSL to deploy with, instead of the one FATE derives (sent like the C(flow) client's
        C(--dsl-path)).
    type: dict
  components_checkpoint:
    description:
      - 'Deploy components from checkpoints, C({hetero_lr_0: {step_index: 5}}) (FATE Flow 1.7+).'
    type: dict
  force:
    description:
      - Deploy a new child even when a deployed child of this model version already exists.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Looks the model and its children up and reports whether a deploy would happen; the child version of a
      deploy that did not happen yet is unknown (null).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - A rerun reuses an existing deployed child of O(model_version) (the newest, when there are several) and
        reports C(changed=false). With O(cpn_list) or O(predict_dsl), only a child whose inference DSL has exactly
        those components (or equals O(predict_dsl)) is reused; with O(components_checkpoint) a new child is always
        deployed.
      - FATE Flow 1.5.1 to 1.8 can list the children of a model only when asked with an empty version, which is what
        the module does; if that fails it deploys again.
      - If O(model_version) is itself a deployed child, nothing is deployed.
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
notes:
  - FATE Flow 1.4 and 1.5.0 have no deploy and load trained models directly; on them the module changes nothing and
    returns O(model_version) as the version to load, with a warning.
seealso:
  - module: fate.flow.model_migrate
  - module: fate.flow.model_load
'''

EXAMPLES = r'''
- name: Deploy the trained model
  fate.flow.model_deploy:
    flow_url: http://127.0.10.1:9380
    model_id: arbiter-10000#guest-9999#host-10000#model
    model_version: "202006171904247702041"
  register: deployed

- name: Migrate the deployed child
  fate.flow.model_migrate:
    flow_url: http://127.0.10.1:9380
    model_id: arbiter-10000#guest-9999#host-10000#model
    model_version: "{{ deployed.model_version }}"
    role: {guest: [9999], host: [10000], arbiter: [10000]}
    migrate_role: {guest: [99], host: [100], arbiter: [100]}
    unify_model_version: "20200901_0001"
'''

RETURN = r'''
model_id:
  description: The model id.
  returned: always
  type: str
  sample: arbiter-10000#guest-9999#host-10000#model
model_version:
  description: The deployed child version, to migrate or load. Null in check mode when a deploy would happen.
  returned: always
  type: str
  sample: "202006171911346893310"
parent_model_version:
  description: The trained (parent) version the child was deployed from.
  returned: always
  type: str
  sample: "202006171904247702041"
status:
  description: V(deployed), V(already_deployed), V(is_deployed_child), V(would_deploy) or V(not_needed) (no deploy API).
  returned: always
  type: str
  sample: deployed
parties:
  description: Per-party results of the deploy.
  returned: when a deploy was submitted
  type: list
  elements: dict
  sample: [{"role": "guest", "party_id": "9999", "retcode": 0, "retmsg": "deploy model of role guest 9999 success"}]
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    clean_row,
    fail_from_error,
    flow_module_kwargs,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import ModelSpecError, check_model_names


def _json(value):
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except ValueError:
            return None
    return value


def _parent_version(row):
    info = _json(row.get('parent_info'))
    if isinstance(info, dict):
        return info.get('parent_model_version')
    return None


def _components(dsl):
    dsl = _json(dsl)
    if isinstance(dsl, dict) and isinstance(dsl.get('components'), dict):
        return set(dsl['components'])
    return None


def _child_matches(row, params):
    if params['cpn_list'] and _components(row.get('inference_dsl')) != set(params['cpn_list']):
        return False
    if params['predict_dsl'] and _json(row.get('inference_dsl')) != params['predict_dsl']:
        return False
    return True


def run(module, client):
    params = module.params
    model_id, version = params['model_id'], params['model_version']
    result = dict(changed=False, model_id=model_id, model_version=version, parent_model_version=version)
    caps = client.capabilities
    if not caps.supports_deploy:
        module.warn('FATE Flow %s has no deploy API and loads trained models as they are; nothing to deploy.'
                    % caps.flow_version)
        result['status'] = 'not_needed'
        return result

    rows = [clean_row(r) for r in client.query_models(model_id=model_id, model_version=version)]
    if not rows:
        raise FlowError('Model %s %s is not known to FATE Flow at %s: check model_id and model_version.'
                        % (model_id, version, client.base_url), endpoint='/v1/model/query', reason=FlowError.NOT_FOUND)
    if not any(row.get('parent') for row in rows) and any(_parent_version(row) for row in rows):
        result.update(status='is_deployed_child', parent_model_version=_parent_version(rows[0]))
        return result

    if not params['force'] and not params['components_checkpoint']:
        try:
            listed = client.query_models(model_id=model_id, model_version='' if caps.query_requires_model_version else None)
        except FlowError as exc:
            module.warn('Could not list the deployed children of %s %s (%s); deploying a new one.'
                        % (model_id, version, exc.message))
            listed = []
        children = {}
        for row in (clean_row(r) for r in listed):
            if not row.get('parent') and _parent_version(row) == version and _child_matches(row, params):
                children[str(row.get('model_version'))] = row
        if children:
            result.update(status='already_deployed', model_version=sorted(children)[-1])
            return result

    result['changed'] = True
    if module.check_mode:
        result.update(status='would_deploy', model_version=None)
        return result

    payload = dict(model_id=model_id, model_version=version)
    if params['cpn_list']:
        payload['cpn_list'] = params['cpn_list']
    if params['predict_dsl']:
        payload['dsl'] = json.dumps(params['predict_dsl'], indent=2)
    if params['components_checkpoint']:
        payload['components_checkpoint'] = params['components_checkpoint']
    body, parties = client.deploy(payload)
    data = body.get('data') or {}
    child = data.get('model_version')
    if not child:
        raise FlowError('FATE Flow deployed %s %s but did not say which version it created: %s'
                        % (model_id, version, body), endpoint='/v1/model/deploy', retcode=body.get('retcode'),
                        retmsg=body.get('retmsg'))
    result.update(status='deployed', model_version=child, parties=parties)
    return result


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            model_id=dict(type='str', required=True),
            model_version=dict(type='str', required=True),
            cpn_list=dict(type='list', elements='str'),
            predict_dsl=dict(type='dict'),
            components_checkpoint=dict(type='dict'),
            force=dict(type='bool', default=False),
        ),
        mutually_exclusive=[['cpn_list', 'predict_dsl']],
        supports_check_mode=True,
    ))
    try:
        check_model_names(module.params, 'model_id', 'model_version')
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    client = FlowClient(module)
    try:
        result = run(module, client)
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
