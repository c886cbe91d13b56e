#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_info
short_description: Look up models known to a FATE Flow
version_added: 0.1.0
description:
  - Queries C(POST /v1/model/query) for models by id, version, role and party id, and tells whether any exists.
  - FATE Flow answers from its database first and then from C(model_local_cache) (saving what it finds there into its
    database), so a model copied or imported into C(model_local_cache) is found too.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  model_id:
    description:
      - The model id, without role and party, for example V(arbiter-10000#guest-9999#host-10000#model).
    type: str
  model_version:
    description:
      - The model version (the training or deploy job id, or the C(unify_model_version) of a migration).
      - FATE Flow 1.5.1 to 1.8 cannot query without it.
    type: str
  role:
    description: Only the copies of this role.
    type: str
    choices: [guest, host, arbiter]
  party_id:
    description: Only the copies of this party. An integer or an integer-like string.
    type: raw
  fields:
    description:
      - Only return these model fields (FATE's C(query_filters)), without their C(f_) prefix, for example
        V([model_id, model_version, role, party_id, loaded_times, parent]).
    type: list
    elements: str
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
  - fate.flow.attributes.info_module
notes:
  - FATE Flow 1.4 and 1.5.0 have no query endpoint; the module fails on them rather than report a model as missing.
seealso:
  - module: fate.flow.flow_info
  - module: fate.flow.model_import
'''

EXAMPLES = r'''
- name: Is the migrated guest model on the destination FATE Flow?
  fate.flow.model_info:
    flow_url: http://127.0.10.3:9380
    model_id: arbiter-100#guest-99#host-100#model
    model_version: "20200901_0001"
    role: guest
    party_id: 99
  register: migrated

- name: Show how often it was loaded to serving
  ansible.builtin.debug:
    msg: "{{ migrated.models | map(attribute='loaded_times') | list }}"
  when: migrated.exists
'''

RETURN = r'''
exists:
  description: At least one model matched.
  returned: success
  type: bool
  sample: true
count:
  description: How many models matched.
  returned: success
  type: int
  sample: 1
models:
  description:
    - The matching models with the C(f_) prefixes of FATE's column names removed.
    - JSON columns (C(roles), C(train_runtime_conf), C(train_dsl), C(inference_dsl), C(parent_info), ...) are objects.
    - The keys depend on the FATE Flow release (for example C(archive_sha256) only on 1.9+).
  returned: success
  type: list
  elements: dict
  sample:
    - model_id: arbiter-100#guest-99#host-100#model
      model_version: "20200901_0001"
      role: guest
      party_id: "99"
      parent: false
      loaded_times: 0
      imported: 1
rows:
  description: The rows exactly as FATE Flow returned them (with the C(f_) prefixes).
  returned: success
  type: list
  elements: dict
  sample: [{"f_model_id": "arbiter-100#guest-99#host-100#model", "f_model_version": "20200901_0001"}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    clean_row,
    fail_from_error,
    flow_module_kwargs,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    ModelSpecError,
    check_model_names,
    to_str_party_id,
)


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            model_id=dict(type='str'),
            model_version=dict(type='str'),
            role=dict(type='str', choices=['guest', 'host', 'arbiter']),
            party_id=dict(type='raw'),
            fields=dict(type='list', elements='str'),
        ),
        supports_check_mode=True,
    ))
    params = module.params
    try:
        check_model_names(params, 'model_id', 'model_version', required=False)
        party_id = None if params['party_id'] in (None, '') else to_str_party_id(params['party_id'], 'party_id')
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    client = FlowClient(module)
    try:
        rows = client.query_models(model_id=params['model_id'], model_version=params['model_version'],
                                   role=params['role'], party_id=party_id, query_filters=params['fields'])
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(changed=False, exists=bool(rows), count=len(rows), models=[clean_row(r) for r in rows], rows=rows)


if __name__ == '__main__':
    main()
