#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: flow_info
short_description: Version, capabilities and health of a FATE Flow
version_added: 0.1.0
description:
  - Asks a FATE Flow for its versions (C(POST /v1/server/version/get) on 1.7+, C(POST /v1/version/get) before) and
    reports the FATE and FATE Flow versions and what this FATE Flow release can do.
  - Works as a readiness probe; see O(fail_on_unhealthy) and the examples.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  fail_on_unhealthy:
    description:
      - Fail the task when FATE Flow cannot be reached or does not answer its version endpoints.
      - 'Set to V(false) for a readiness probe (C(until: result.healthy)), so that a FATE Flow that is still starting
        gives RV(healthy=false) instead of a failed task.'
      - A FATE Flow release that fate.flow does not support (2.x, or older than 1.4), and a FATE Flow that refuses the
        request signature (O(app_key)/O(secret_key)), always fail the task; waiting would not help.
    type: bool
    default: true
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
  - fate.flow.attributes.info_module
notes:
  - A FATE Flow 1.10 or 1.11 answers the removed C(/v1/version/get) path with HTTP 200 and C(retcode) 100, so an
    HTTP status check (as in KubeFATE's healthcheck) does not prove FATE Flow works. This module reads the versions
    instead.
seealso:
  - module: fate.flow.model_info
'''

EXAMPLES = r'''
- name: Wait until the FATE Flow of party 9999 answers
  fate.flow.flow_info:
    flow_url: http://127.0.10.1:9380
    fail_on_unhealthy: false
    retries: 0
  register: flow
  until: flow.healthy
  retries: 30
  delay: 2
  delegate_to: localhost

- name: Stop early on a FATE Flow that cannot deploy models
  ansible.builtin.assert:
    that: flow.capabilities.supports_deploy
    fail_msg: "FATE {{ flow.fate_version }} has no /model/deploy"

- name: Set the connection once for every fate.flow module
  module_defaults:
    group/fate.flow.fate_flow:
      flow_url: https://flow.party-9999.example:9380
      ca_path: /etc/pki/fate/ca.pem
  block:
    - name: Show the versions
      fate.flow.flow_info:
      register: flow
'''

RETURN = r'''
healthy:
  description:
    - FATE Flow answered its version endpoint with a version.
    - Also true (with a failed task) when FATE Flow answered but refused the request signature.
  returned: always
  type: bool
  sample: true
supported:
  description: The FATE Flow release is one fate.flow supports (1.4 to 1.11). Null when FATE Flow did not answer.
  returned: always
  type: bool
  sample: true
fate_version:
  description: The FATE release (C(FATE) in C(fate.env)).
  returned: when healthy
  type: str
  sample: 1.11.4
flow_version:
  description: The FATE Flow release (C(FATEFlow) in C(fate.env) on 1.7+; the FATE release before 1.7).
  returned: when healthy
  type: str
  sample: 1.11.2
api_version:
  description: The HTTP API version; FATE Flow 1.4 to 1.6 do not report it and speak V(v1).
  returned: when healthy
  type: str
  sample: v1
versions:
  description: Every component version the endpoint reported (FATE, FATEFlow, FATEBoard, EGGROLL, ... on 1.7+).
  returned: when healthy
  type: dict
  sample: {"API": "v1", "FATE": "1.11.4", "FATEFlow": "1.11.2", "FATEBoard": "1.11.2"}
version_endpoint:
  description: The endpoint that answered.
  returned: when healthy
  type: str
  sample: /v1/server/version/get
capabilities:
  description:
    - What this FATE Flow release can do and how it behaves, as the fate.flow modules see it.
    - Includes C(supports_migrate), C(supports_query), C(supports_deploy), C(import_has_force_update_and_hash),
      C(duplicate_import_is_409), C(keeps_migrated_model), C(serving_needs_str_party_ids), C(load_needs_work_mode),
      C(writes_sha1_sidecar), and the layout relative to the FATE home (C(temp_dir), C(model_local_cache),
      C(config_files)).
  returned: when healthy
  type: dict
  sample: {"supports_migrate": true, "supports_query": true, "duplicate_import_is_409": true, "temp_dir": "fateflow/temp"}
flow_url:
  description: The base URL that was asked.
  returned: always
  type: str
  sample: http://127.0.10.1:9380
unhealthy_reason:
  description: Why FATE Flow is not healthy.
  returned: when not healthy
  type: str
  sample: "FATE Flow at http://127.0.10.1:9380 is unreachable: could not connect (...)"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    flow_module_kwargs,
)


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(fail_on_unhealthy=dict(type='bool', default=True)),
        supports_check_mode=True,
    ))
    client = FlowClient(module)
    result = dict(changed=False, flow_url=client.base_url, healthy=False, supported=None)
    try:
        caps = client.detect_version()
    except FlowError as exc:
        if exc.reason in (FlowError.UNSUPPORTED, FlowError.AUTH):
            # FATE Flow answered: waiting will not change a release or a refused signature.
            result['healthy'] = exc.reason == FlowError.AUTH
            result['supported'] = False if exc.reason == FlowError.UNSUPPORTED else None
            module.fail_json(msg=exc.message, **dict(result, **exc.result()))
        result['unhealthy_reason'] = exc.message
        if module.params['fail_on_unhealthy']:
            module.fail_json(msg=exc.message, **dict(result, **exc.result()))
        module.exit_json(**result)

    result.update(
        healthy=True,
        supported=caps.supported,
        fate_version=caps.fate_version,
        flow_version=caps.flow_version,
        api_version=caps.api_version,
        versions=caps.versions,
        version_endpoint=caps.source,
        capabilities=caps.as_dict(),
    )
    if not caps.supported:
        module.fail_json(msg=caps.unsupported_reason(), reason=FlowError.UNSUPPORTED, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
