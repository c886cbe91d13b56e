#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_import
short_description: Import a FATE model archive into a FATE Flow
version_added: 0.1.0
description:
  - Uploads a model archive (for example one written by M(fate.flow.model_migrate)) to C(POST /v1/model/import) of
    the FATE Flow of one party, which stores it as the model of O(role) O(party_id).
  - The archive must be on the host where the module runs (usually the controller with C(delegate_to)); it is
    streamed from disk, so memory use does not grow with its size.
  - Before sending, the archive is checked - a readable zip, no entry with an absolute path or C(..), the model's
    Pipeline and C(define_meta.yaml) present, and O(party_id) a party of O(role) in the model.
  - After an import, the module asks FATE Flow for the model (C(/v1/model/query), FATE Flow 1.5.1+) and fails when
    FATE Flow accepted the upload but does not list the model; C(verified) says whether the model was found.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  archive:
    description: Path of the model archive (C(.zip)) on the host running the module.
    type: path
    required: true
  role:
    description: The role the model is imported for.
    type: str
    required: true
    choices: [guest, host, arbiter]
  party_id:
    description:
      - The party the model is imported for (an integer or integer-like string). It must be a O(role) party of the
        model, that is of the migrated model for migrated archives.
    type: raw
    required: true
  model_id:
    description:
      - The model id to import under. Defaults to the id stored in the archive's Pipeline (for a migrated archive, the
        new model id).
    type: str
  model_version:
    description: The model version to import under. Defaults to the version stored in the archive's Pipeline.
    type: str
  force:
    description:
      - Replace a different model already imported under the same role, party, id and version.
      - Only FATE Flow 1.9+ can replace a model (C(force_update)); with older releases the module fails and says
        which directory to remove on the FATE Flow host.
      - A model imported from the same archive is never sent again, with or without O(force).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Checks the archive, looks the model up on FATE Flow and reports whether an import would happen, without
      uploading.
  diff_mode:
    support: full
    details: Shows the model before and after (sha256, FATE version, roles).
  idempotent:
    support: full
    details:
      - The model counts as already imported when FATE Flow has a model with the same role, party id, model id and
        version, and either the archive sha256 FATE Flow recorded for it (1.9+) equals the archive's, or its Pipeline
        content (FATE version, train and inference DSL, role map of the train runtime conf) equals the archive's.
        Then nothing is uploaded and C(changed=false).
      - FATE Flow 1.4 and 1.5.0 cannot be queried; there the module uploads and, if FATE Flow answers that the model
        already exists, reports C(changed=false) with a warning that the content could not be compared.
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
notes:
  - FATE Flow 1.9+ keep the model a migration produced on the FATE Flow that ran the migration. Importing the archive
    there again finds the same model and changes nothing.
  - FATE Flow 1.9+ get the archive's sha256 with the upload (C(hash)) and refuse a corrupted upload.
seealso:
  - module: fate.flow.model_migrate
  - module: fate.flow.model_info
'''

EXAMPLES = r'''
- name: Import the migrated guest model on the destination guest's FATE Flow
  fate.flow.model_import:
    flow_url: http://127.0.10.3:9380
    archive: "{{ playbook_dir }}/artifacts/guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip"
    role: guest
    party_id: 99
  delegate_to: localhost

- name: Import the host and arbiter models (one party, two roles)
  fate.flow.model_import:
    flow_url: http://127.0.10.4:9380
    archive: "{{ playbook_dir }}/artifacts/{{ item }}#100#arbiter-100#guest-99#host-100#model_20200901_0001.zip"
    role: "{{ item }}"
    party_id: 100
  loop: [host, arbiter]
  delegate_to: localhost
'''

RETURN = r'''
role:
  description: The role the model was imported for.
  returned: always
  type: str
  sample: guest
party_id:
  description: The party id, as text.
  returned: always
  type: str
  sample: "99"
model_id:
  description: The model id the model is stored under.
  returned: always
  type: str
  sample: arbiter-100#guest-99#host-100#model
model_version:
  description: The model version the model is stored under.
  returned: always
  type: str
  sample: "20200901_0001"
party_model_id:
  description: C(<role>#<party_id>#<model_id>), the model's directory name in C(model_local_cache).
  returned: always
  type: str
  sample: guest#99#arbiter-100#guest-99#host-100#model
archive_sha256:
  description: sha256 of the archive.
  returned: always
  type: str
status:
  description: V(imported), V(replaced), V(already_imported), V(would_import) or V(would_replace).
  returned: always
  type: str
  sample: imported
verified:
  description:
    - V(true) when FATE Flow lists the model under O(role), O(party_id), model id and version (after the import, or
      before it when the model was already imported). V(false) in check mode and with FATE Flow 1.4 and 1.5.0, which
      cannot be queried.
  returned: always
  type: bool
  sample: true
job_id:
  description: The job id FATE Flow 1.9+ give the import.
  returned: when FATE Flow 1.9+ imported the model
  type: str
fate_version:
  description: The FATE version that wrote the model, from the archive.
  returned: always
  type: str
  sample: 1.6.1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    fail_from_error,
    flow_module_kwargs,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    ModelSpecError,
    check_name,
    file_digests,
    inspect_archive,
    party_model_id,
    pipeline_fingerprint,
    to_str_party_id,
)


def same_model(row, facts, sha256):
    """(same, how): does the FATE Flow row describe the model in the archive?"""
    recorded = row.get('archive_sha256')
    if recorded and str(recorded).lower() == sha256:
        return True, 'sha256'
    mine = pipeline_fingerprint(facts['pipeline'])
    theirs = pipeline_fingerprint(row)
    compared = [key for key in mine if mine[key] is not None and theirs[key] is not None]
    if compared and all(mine[key] == theirs[key] for key in compared):
        return True, 'pipeline content (%s)' % ', '.join(compared)
    return False, 'sha256' if recorded else 'pipeline content'


def _summary(sha256=None, fate_version=None, roles=None):
    return dict(archive_sha256=sha256, fate_version=fate_version, roles=roles)


def run(module, client):
    params = module.params
    role = params['role']
    party_id = to_str_party_id(params['party_id'], 'party_id')
    facts = inspect_archive(params['archive'], role, party_id)
    model_id = params['model_id'] or facts['model_id']
    version = params['model_version'] or facts['model_version']
    if not model_id or not version:
        raise ModelSpecError('the archive does not name its model id and version; set model_id and model_version')
    check_name(model_id, 'model_id' if params['model_id'] else 'the model id stored in the archive')
    check_name(version, 'model_version' if params['model_version'] else 'the model version stored in the archive')
    for name, given, stored in (('model_id', params['model_id'], facts['model_id']),
                                ('model_version', params['model_version'], facts['model_version'])):
        if given and stored and given != stored:
            module.warn('%s %s differs from the one in the archive (%s); the model is stored under %s'
                        % (name, given, stored, given))
    sha256 = file_digests(params['archive'])['sha256']
    pmid = party_model_id(role, party_id, model_id)
    result = dict(changed=False, role=role, party_id=party_id, model_id=model_id, model_version=version,
                  party_model_id=pmid, archive_sha256=sha256, fate_version=facts['fate_version'], verified=False)
    after = _summary(sha256, facts['fate_version'], pipeline_fingerprint(facts['pipeline'])['roles'])

    caps = client.capabilities
    existing = None
    if caps.supports_query:
        existing = client.find_model(model_id, version, role, party_id)
    replacing = False
    if existing:
        same, how = same_model(existing, facts, sha256)
        if same:
            result.update(status='already_imported', compared_by=how, verified=True)
            return result
        if not params['force']:
            raise FlowError(
                'A different model is already imported as %s %s on %s (compared by %s).'
                % (pmid, version, client.base_url, how), endpoint='/v1/model/query', reason=FlowError.CONFLICT,
                hint='Set force=true to replace it.' if caps.import_has_force_update_and_hash else
                'FATE Flow %s cannot replace a model: remove %s/%s/%s on the FATE Flow host (and its row in '
                't_machine_learning_model_info) first.' % (caps.flow_version, caps.model_local_cache, pmid, version))
        if not caps.import_has_force_update_and_hash:
            raise FlowError(
                'FATE Flow %s cannot replace the model %s %s already imported on %s: force_update needs FATE Flow 1.9+.'
                % (caps.flow_version, pmid, version, client.base_url), reason=FlowError.UNSUPPORTED,
                hint='Remove <FATE home>/%s/%s/%s on the FATE Flow host (and its row in t_machine_learning_model_info) '
                     'first.' % (caps.model_local_cache, pmid, version))
        replacing = True
    if module._diff:
        before = _summary(existing.get('archive_sha256'), existing.get('fate_version'),
                          pipeline_fingerprint(existing)['roles']) if existing else {}
        result['diff'] = dict(before=before, after=after, before_header='%s %s' % (pmid, version),
                              after_header='%s %s' % (pmid, version))

    result['changed'] = True
    if module.check_mode:
        result['status'] = 'would_replace' if replacing else 'would_import'
        return result

    try:
        body = client.import_model(params['archive'], role, party_id, model_id, version,
                                   force_update=params['force'], sha256=sha256)
    except FlowError as exc:
        duplicate = exc.reason == FlowError.CONFLICT or (
            exc.retmsg and 'already existed' in str(exc.retmsg))
        if duplicate and not caps.supports_query:
            module.warn('FATE Flow %s already has %s %s; it cannot be queried, so whether it came from this archive '
                        'was not checked.' % (caps.flow_version, pmid, version))
            result.update(changed=False, status='already_imported', compared_by=None)
            result.pop('diff', None)
            return result
        raise
    data = body.get('data') if isinstance(body.get('data'), dict) else {}
    result['status'] = 'replaced' if replacing else 'imported'
    if data.get('job_id'):
        result['job_id'] = data['job_id']
    if caps.supports_query:
        # FATE Flow can answer "success" and still not register the model (a failed database write, a job that
        # failed after the answer); only a query shows the model is there to load.
        if not client.find_model(model_id, version, role, party_id):
            raise FlowError(
                'FATE Flow on %s accepted the import of %s %s but does not list the model afterwards.'
                % (client.base_url, pmid, version), endpoint='/v1/model/query', reason=FlowError.NOT_FOUND,
                hint='Look for the import in FATE Flow\'s logs (fate_flow_stat.log%s), then run again: the import is '
                     'repeated.' % (', job %s' % data['job_id'] if data.get('job_id') else ''))
        result['verified'] = True
    return result


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            archive=dict(type='path', required=True),
            role=dict(type='str', required=True, choices=['guest', 'host', 'arbiter']),
            party_id=dict(type='raw', required=True),
            model_id=dict(type='str'),
            model_version=dict(type='str'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    ))
    client = FlowClient(module)
    try:
        result = run(module, client)
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc), archive=module.params['archive'])
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
