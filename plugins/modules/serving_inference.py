#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: serving_inference
short_description: Send one online inference to FATE-Serving and tell which model answered
version_added: 0.1.0
description:
  - Sends one online inference request for a service id to a guest party's FATE-Serving serving-proxy
    (C(POST /federation/v1/inference), FATE-Serving 2.x) and returns its answer.
  - FATE-Serving's answer names the model it used (C(data.modelId), the guest's party model id such as
    C(guest#99#arbiter-100#guest-99#host-100#model), and C(data.modelVersion)). With O(model_id) and
    O(model_version) the module tells whether the service id serves exactly that model (RV(serves_model)), which
    is how a playbook finds out that a model is already loaded and bound (FATE Flow cannot tell).
  - An inference reads only; it changes nothing in FATE-Serving. The module never reports C(changed).
  - By default any answer of FATE-Serving is returned, whatever its C(retcode); O(require) makes the module fail
    unless the answer has a score, or unless it comes from the given model.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  serving_proxy_url:
    description:
      - Base URL of the guest party's FATE-Serving serving-proxy HTTP API, for example V(http://127.0.0.1:8059).
      - The module appends C(/federation/v1/inference); a URL that already ends with it is accepted.
      - If not set, the value of the E(FATE_SERVING_PROXY_URL) environment variable is used.
    type: str
    required: true
  service_id:
    description: The service id the model is bound to (M(fate.flow.model_bind)).
    type: str
    required: true
  feature_data:
    description: The guest's features (C(body.featureData)), feature name to value.
    type: dict
    default: {}
  send_to_remote_feature_data:
    description:
      - 'The ids sent on to the host parties (C(body.sendToRemoteFeatureData)), for example C({device_id: "0001"}).
        Only this part of the request leaves the guest.'
    type: dict
    default: {}
  model_id:
    description:
      - The model that should answer. Either the model id (C(arbiter-100#guest-99#host-100#model)), then O(party_id)
        names the guest, or the guest's party model id as FATE-Serving reports it
        (C(guest#99#arbiter-100#guest-99#host-100#model)).
    type: str
  model_version:
    description: The model version that should answer (the version that was loaded and bound).
    type: str
  party_id:
    description: The guest party whose serving answers, to turn a plain O(model_id) into its party model id.
    type: str
  require:
    description:
      - V(answer) returns any answer of FATE-Serving, also one with a non-zero C(retcode) (for example for a
        service id that is not bound yet).
      - V(score) fails unless the answer has C(retcode) 0 and a score.
      - V(model) fails unless the answer has C(retcode) 0, a score, and comes from O(model_id) version
        O(model_version) (both required then).
    type: str
    choices: [answer, score, model]
    default: answer
  timeout:
    description: Seconds to wait for the answer (the guest waits for every host party's partial score).
    type: int
    default: 30
  retries:
    description:
      - How many times the request is sent again after a connection error or an HTTP 502, 503 or 504 answer. An
        inference changes nothing, so resending it is safe. Read timeouts are not retried.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; each further retry waits twice as long as the previous one.
    type: float
    default: 1.0
  validate_certs:
    description:
      - Verify the TLS certificate of an V(https://) O(serving_proxy_url). Only set to V(false) for test servers.
    type: bool
    default: true
  ca_path:
    description: A CA bundle (PEM) to verify the serving-proxy certificate with, instead of the system's.
    type: path
  client_cert:
    description: A PEM client certificate for mutual TLS. May also hold the private key; otherwise set O(client_key).
    type: path
  client_key:
    description: The PEM private key of O(client_cert).
    type: path
requirements:
  - requests (Python library) on the host that runs the module.
attributes:
  check_mode:
    description: Can run in check mode.
    support: full
    details: An inference only reads, so the module sends it in check mode too and returns the same answer.
  diff_mode:
    description: Returns details on what has changed.
    support: N/A
    details: This module changes nothing.
  idempotent:
    description: Running the task again changes nothing and reports C(changed=false).
    support: full
notes:
  - The module is not part of the C(fate.flow.fate_flow) action group. The group's members take the FATE Flow
    connection options (C(flow_url), C(app_key), C(secret_key), ...); this module talks to FATE-Serving and takes
    O(serving_proxy_url) instead, so C(module_defaults) for the group would hand it options it does not have.
  - A failure returns the keys C(url), C(http_status), C(retcode), C(retmsg) and C(reason), and C(answer) when
    FATE-Serving answered.
seealso:
  - module: fate.flow.model_load
  - module: fate.flow.model_bind
'''

EXAMPLES = r'''
- name: Is credit_scoring already served by the migrated model?
  fate.flow.serving_inference:
    serving_proxy_url: http://192.0.2.21:8059
    service_id: credit_scoring
    feature_data: {x0: 0.25, x1: -0.5, x2: 1.0, x3: 0.1}
    send_to_remote_feature_data: {device_id: smoke-0001}
    model_id: arbiter-100#guest-99#host-100#model
    party_id: "99"
    model_version: "202006171911346893310_migrated"
  register: served

- name: Load and bind only when it is not
  ansible.builtin.debug:
    msg: "{{ 'already published' if served.serves_model else 'publish needed' }}"

- name: Fail unless the service answers with a score from that model
  fate.flow.serving_inference:
    serving_proxy_url: http://192.0.2.21:8059
    service_id: credit_scoring
    feature_data: {x0: 0.25, x1: -0.5, x2: 1.0, x3: 0.1}
    send_to_remote_feature_data: {device_id: smoke-0001}
    model_id: guest#99#arbiter-100#guest-99#host-100#model
    model_version: "202006171911346893310_migrated"
    require: model
'''

RETURN = r'''
url:
  description: The URL the request was sent to.
  returned: always
  type: str
  sample: http://192.0.2.21:8059/federation/v1/inference
service_id:
  description: The service id asked for.
  returned: always
  type: str
  sample: credit_scoring
answer:
  description: FATE-Serving's answer, as it came.
  returned: always
  type: dict
  sample: {"retcode": 0, "retmsg": "", "flag": 0, "data": {"score": 0.42, "modelId":
           "guest#99#arbiter-100#guest-99#host-100#model", "modelVersion": "202006171911346893310_migrated",
           "timestamp": 1700000000000}}
retcode:
  description: The answer's C(retcode) (0 on success; 4-digit codes starting with 2 are a host party's failure).
  returned: always
  type: int
  sample: 0
retmsg:
  description: The answer's C(retmsg).
  returned: always
  type: str
  sample: ""
score:
  description: The answer's score, null when there is none.
  returned: always
  type: float
  sample: 0.42
served_model_id:
  description: The guest party model id the answer names (C(data.modelId)), null when it names none.
  returned: always
  type: str
  sample: guest#99#arbiter-100#guest-99#host-100#model
served_model_version:
  description: The model version the answer names (C(data.modelVersion)), null when it names none.
  returned: always
  type: str
  sample: "202006171911346893310_migrated"
expected_model_id:
  description: The guest party model id compared with RV(served_model_id).
  returned: when O(model_id) is given
  type: str
  sample: guest#99#arbiter-100#guest-99#host-100#model
serves_model:
  description:
    - True when the answer has C(retcode) 0 and a score and names O(model_id) (when given) and O(model_version)
      (when given); null when neither is given.
  returned: always
  type: bool
  sample: true
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._serving_client import (
    ServingClient,
    ServingError,
    answer_score,
    code_hint,
    fail_from_error,
    guest_party_model_id,
    served_model,
    serving_module_kwargs,
)


def validate(params):
    service_id = (params['service_id'] or '').strip()
    if not service_id:
        raise ValueError('service_id must not be empty')
    if params['require'] == 'model' and not (params['model_id'] and params['model_version']):
        raise ValueError('require=model needs model_id and model_version')
    return service_id


def run(module, client, service_id):
    params = module.params
    answer = client.inference(service_id, params['feature_data'], params['send_to_remote_feature_data'])
    retcode = answer.get('retcode')
    score = answer_score(answer)
    served_id, served_version = served_model(answer)
    expected_id = guest_party_model_id(params['model_id'], params['party_id']) if params['model_id'] else None
    result = dict(changed=False, url=client.url(), service_id=service_id, answer=answer, retcode=retcode,
                  retmsg=answer.get('retmsg'), score=score, served_model_id=served_id,
                  served_model_version=served_version, serves_model=None)
    if expected_id is not None:
        result['expected_model_id'] = expected_id
    if expected_id is not None or params['model_version']:
        result['serves_model'] = bool(
            retcode == 0 and score is not None
            and (expected_id is None or served_id == expected_id)
            and (not params['model_version'] or served_version == str(params['model_version'])))
    if params['require'] in ('score', 'model') and (retcode != 0 or score is None):
        raise ServingError(
            'Inference on service %s did not answer with a score: retcode %s, retmsg %r'
            % (service_id, retcode, answer.get('retmsg')), url=client.url(), http_status=200, retcode=retcode,
            retmsg=answer.get('retmsg'), reason=ServingError.RETCODE, answer=answer, hint=code_hint(retcode))
    if params['require'] == 'model' and not result['serves_model']:
        raise ServingError(
            'Service %s answered from model %s version %s, not from %s version %s'
            % (service_id, served_id, served_version, expected_id, params['model_version']), url=client.url(),
            http_status=200, retcode=retcode, retmsg=answer.get('retmsg'), reason=ServingError.MISMATCH,
            answer=answer, hint='Load that model version (fate.flow.model_load) and bind the service id to it '
                                '(fate.flow.model_bind).')
    return result


def main():
    module = AnsibleModule(**serving_module_kwargs(
        dict(
            service_id=dict(type='str', required=True),
            feature_data=dict(type='dict', default={}),
            send_to_remote_feature_data=dict(type='dict', default={}),
            model_id=dict(type='str'),
            model_version=dict(type='str'),
            party_id=dict(type='str'),
            require=dict(type='str', choices=['answer', 'score', 'model'], default='answer'),
        ),
        supports_check_mode=True,
    ))
    try:
        service_id = validate(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    client = ServingClient(module)
    try:
        result = run(module, client, service_id)
    except ServingError as exc:
        fail_from_error(module, exc, service_id=service_id)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
