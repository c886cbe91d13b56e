#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_migrate
short_description: Migrate a trained FATE model to new party ids
version_added: 0.1.0
description:
  - Asks a FATE Flow to rewrite a model for a new set of parties (C(POST /v1/model/migrate)). Each executing party
    writes one archive C(<role>#<new party id>#<new model id>_<version>.zip) into the temp directory of its FATE Flow;
    that archive is what M(fate.flow.model_import) imports on the destination cluster.
  - The role maps are checked here before anything is sent, and the new model id is computed the way FATE computes it.
  - FATE Flow answers C(retcode 0 "success") even when the migration failed on a party; this module checks every
    party and fails, naming each failed party and its message.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  model_id:
    description: The id of the model to migrate, for example V(arbiter-10000#guest-9999#host-10000#model).
    type: str
    required: true
  model_version:
    description:
      - The version of the model to migrate. Migrate the deployed child version if the model must be loaded
        afterwards (see M(fate.flow.model_deploy)).
    type: str
    required: true
  role:
    description:
      - 'The parties of the original model, C({guest: [9999], host: [10000], arbiter: [10000]}).'
      - Party ids may be integers or integer-like strings; they are sent as integers, as FATE requires.
      - Both V(guest) and V(host) must be present.
    type: dict
    required: true
  migrate_role:
    description:
      - The new parties, with the same roles and the same number of parties per role as O(role).
      - Position I(i) of each role list replaces position I(i) of the same role in O(role).
    type: dict
    required: true
  execute_party:
    description:
      - 'The original parties that run the migration, as C({role: [original party ids]}).'
      - Defaults to every party of O(role).
      - With O(federated_mode=SINGLE), list only parties whose models are on the cluster of O(flow_url).
    type: dict
  migrate_initiator:
    description:
      - 'The initiator written into the migrated model, C({role: guest, party_id: 99}); a party of O(migrate_role).'
      - Defaults to the first guest of O(migrate_role).
    type: dict
  federated_mode:
    description:
      - V(MULTIPLE) sends each party's migration to that party's FATE Flow through the federation (the proxy or
        rollsite route must know the original party ids).
      - V(SINGLE) runs every party's migration on the FATE Flow of O(flow_url).
    type: str
    choices: [SINGLE, MULTIPLE]
    default: MULTIPLE
  unify_model_version:
    description:
      - The version of the migrated model.
      - Without it FATE Flow uses the job id of the call, so every run creates a new version and the task is never
        idempotent. Set it to make reruns safe.
    type: str
  archive_dir:
    description:
      - The directory where the executing FATE Flow writes archives, readable on the host running the module.
      - Lets the module see archives of an earlier run (idempotency) and return their sha256.
      - For parties whose migration runs elsewhere (O(federated_mode=MULTIPLE)), it is only useful if that directory
        is shared.
    type: path
  fate_home:
    description:
      - The FATE home (project base, for example V(/data/projects/fate)) of the executing FATE Flow, on the host
        running the module. The archive directory is derived from it and the FATE Flow release (C(temp/fate_flow)
        before 1.7, C(fateflow/temp) from 1.7).
      - Mutually exclusive with O(archive_dir).
    type: path
attributes:
  check_mode:
    support: full
    details: Validates the role maps, computes the new model id, version (when O(unify_model_version) is set) and archive
      names, looks for existing archives, and submits nothing.
  diff_mode:
    support: full
    details: Shows the archives before and after.
  idempotent:
    support: partial
    details:
      - Idempotent when O(unify_model_version) is set and the module can see earlier results, either the archives
        (O(archive_dir) or O(fate_home)) or, on FATE Flow 1.9+, the migrated model registered on the executing
        FATE Flow. Parties already migrated are not submitted again.
      - On FATE Flow 1.9+ (assuming every executing party runs the release of O(flow_url)), a party whose FATE Flow
        refuses the rerun because the version is "occupied" by exactly this migrated model also counts as already
        migrated; FATE Flow 1.5 to 1.8 use a broader check, so there it stays an error.
      - Without O(unify_model_version) every run creates a new model version.
extends_documentation_fragment:
  - fate.flow.connection
  - fate.flow.attributes
notes:
  - FATE Flow 1.4 has no migration API, and every migration on FATE 1.5.0 fails on a FATE bug; the module refuses
    both before sending anything.
  - A stale archive of the same name that holds a different model makes the task fail rather than be reused.
  - FATE Flow 1.5 to 1.8 keep nothing but the archive; FATE Flow 1.9+ also keep the migrated model on the executing
    FATE Flow, so importing the archive there again needs O(fate.flow.model_import#module:force).
seealso:
  - module: fate.flow.model_deploy
  - module: fate.flow.model_import
'''

EXAMPLES = r'''
- name: Migrate the guide's model from parties 9999/10000 to 99/100
  fate.flow.model_migrate:
    flow_url: http://127.0.10.1:9380
    model_id: arbiter-10000#guest-9999#host-10000#model
    model_version: "202006171911346893310"
    role: {guest: [9999], host: [10000], arbiter: [10000]}
    migrate_role: {guest: [99], host: [100], arbiter: [100]}
    unify_model_version: "20200901_0001"
    federated_mode: SINGLE
    execute_party: {guest: [9999]}
    fate_home: /data/projects/fate
  register: migration
  delegate_to: localhost

- name: Fetch the archive of each migrated party
  ansible.builtin.fetch:
    src: "{{ item.archive_path }}"
    dest: "{{ playbook_dir }}/artifacts/"
    flat: true
  loop: "{{ migration.parties }}"
'''

RETURN = r'''
model_id:
  description: The new model id, computed from O(migrate_role) as FATE does.
  returned: always
  type: str
  sample: arbiter-100#guest-99#host-100#model
model_version:
  description: The version of the migrated model. Null in check mode without O(unify_model_version).
  returned: always
  type: str
  sample: "20200901_0001"
job_id:
  description: The job id of the migration call (FATE's default for the version).
  returned: when a migration was submitted
  type: str
  sample: "202111091127392613050"
parties:
  description: One entry per executing party.
  returned: always
  type: list
  elements: dict
  contains:
    role:
      description: The role of the party.
      type: str
      sample: guest
    old_party_id:
      description: The original party id.
      type: int
      sample: 9999
    new_party_id:
      description: The party id in the migrated model.
      type: int
      sample: 99
    model_id:
      description: The new model id.
      type: str
      sample: arbiter-100#guest-99#host-100#model
    party_model_id:
      description: C(<role>#<new party id>#<new model id>).
      type: str
      sample: guest#99#arbiter-100#guest-99#host-100#model
    model_version:
      description: The version of the migrated model.
      type: str
      sample: "20200901_0001"
    archive_name:
      description: The archive file name.
      type: str
      sample: guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip
    archive_path:
      description:
        - The archive path on the host of the FATE Flow that executed the migration, as FATE Flow reported it, or as
          derived from O(archive_dir)/O(fate_home). Null when unknown.
      type: str
      sample: /data/projects/fate/fateflow/temp/guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip
    archive_sha256:
      description: sha256 of the archive when it is readable where the module runs, or as FATE Flow 1.9+ recorded it.
      type: str
    archive_sha1:
      description: The content of the C(.sha1) file FATE Flow 1.5.2 to 1.8 write beside the archive, when readable.
      type: str
    status:
      description: V(migrated), V(already_migrated) or, in check mode, V(would_migrate).
      type: str
      sample: migrated
    retmsg:
      description: The message of the party's migration.
      type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils._flow_client import (
    FlowClient,
    FlowError,
    fail_from_error,
    flow_module_kwargs,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    ModelSpecError,
    archive_facts,
    check_file_name,
    check_model_names,
    check_name,
    archive_name,
    gen_model_id,
    inspect_archive,
    iter_parties,
    parse_archive_path,
    party_model_id,
    roles_equal,
    validate_migrate_roles,
)


def _occupied(answer):
    return answer.get('reached') and 'has been occupied' in str(answer.get('retmsg'))


def _existing_archive(path, new_model_id, version, migrate_role):
    """Facts of an earlier run's archive at ``path``, or None; fails on an archive of another model."""
    facts = archive_facts(path)
    if facts is None:
        return None
    try:
        model = inspect_archive(path)
    except ModelSpecError as exc:
        raise ModelSpecError('%s. It is where this migration writes its archive: remove it (FATE Flow writes it '
                             'again), then run again.' % str(exc).rstrip('.'))
    conf_roles = model['roles']
    if (model['model_id'] not in (None, new_model_id) or model['model_version'] not in (None, version)
            or (conf_roles and not roles_equal(conf_roles, migrate_role))):
        raise ModelSpecError(
            'archive %s already exists but holds another model (model_id %s, version %s, roles %s); remove it or '
            'choose another unify_model_version' % (path, model['model_id'], model['model_version'], conf_roles))
    return facts


def _set_archive_facts(module, entry, path):
    facts = archive_facts(path) if path else None
    if facts:
        entry.update(archive_path=path, archive_sha256=facts['archive_sha256'], archive_sha1=facts['archive_sha1'])
        if facts.get('archive_sha1_matches') is False:
            module.warn('%s does not match its .sha1 file' % path)
    return facts


def plan(execute_party, mapping, new_model_id, version, directory):
    """One entry per executing party, with the names FATE will use."""
    parties = []
    for name, old in iter_parties(execute_party):
        new = mapping[(name, old)]
        if version:
            check_file_name(archive_name(name, new, new_model_id, version), 'the archive name')
        entry = dict(role=name, old_party_id=old, new_party_id=new, model_id=new_model_id,
                     party_model_id=party_model_id(name, new, new_model_id), model_version=version,
                     archive_name=archive_name(name, new, new_model_id, version) if version else None,
                     archive_path=None, archive_sha256=None, archive_sha1=None, status=None, retmsg=None)
        if version and directory:
            entry['archive_path'] = os.path.join(directory, entry['archive_name'])
        parties.append(entry)
    return parties


def find_done(module, client, caps, parties, migrate_role):
    """Mark the parties an earlier run with the same unify_model_version already migrated."""
    for entry in parties:
        version = entry['model_version']
        facts = _existing_archive(entry['archive_path'], entry['model_id'], version, migrate_role) \
            if entry['archive_path'] else None
        if facts:
            entry.update(archive_sha256=facts['archive_sha256'], archive_sha1=facts['archive_sha1'],
                         status='already_migrated', retmsg='archive found at %s' % entry['archive_path'])
            if facts.get('archive_sha1_matches') is False:
                module.warn('%s does not match its .sha1 file' % entry['archive_path'])
        elif caps.keeps_migrated_model and caps.supports_query:
            row = client.find_model(entry['model_id'], version, entry['role'], entry['new_party_id'])
            if row:
                entry.update(archive_sha256=row.get('archive_sha256') or None, status='already_migrated',
                             retmsg='model %s %s is registered on %s' % (entry['party_model_id'], version,
                                                                         client.base_url))


def submit(client, caps, params, spec, pending, parties):
    """POST the migration for the pending parties; returns (job id, answers by (role, old id))."""
    role, migrate_role, _execute, initiator, _mapping = spec
    pending_execute = {}
    for entry in pending:
        pending_execute.setdefault(entry['role'], []).append(entry['old_party_id'])
    payload = dict(job_parameters=dict(federated_mode=params['federated_mode']), role=role,
                   migrate_role=migrate_role, migrate_initiator=initiator, execute_party=pending_execute,
                   model_id=params['model_id'], model_version=params['model_version'])
    if params['unify_model_version']:
        payload['unify_model_version'] = params['unify_model_version']
    try:
        body, answers = client.migrate(payload, pending_execute)
    except FlowError as exc:
        if not exc.parties:
            raise
        entries = dict(((e['role'], str(e['old_party_id'])), e) for e in parties)
        for answer in exc.parties:
            entry = entries.get((answer['role'], str(answer['party_id'])), {})
            answer.update(old_party_id=answer['party_id'], new_party_id=entry.get('new_party_id'),
                          party_model_id=entry.get('party_model_id'))
        # FATE Flow 1.9+ refuse a migration only when that very model (role, new party, new model id,
        # version) exists: on a rerun that means the party was migrated before.
        failed = [a for a in exc.parties if not a['ok']]
        if not (params['unify_model_version'] and caps.keeps_migrated_model and all(_occupied(a) for a in failed)):
            raise
        body, answers = {}, exc.parties
    return body.get('jobId'), dict(((a['role'], str(a['party_id'])), a) for a in answers)


def record(module, client, caps, entry, answer, version, directory):
    """Fill a submitted party's entry from its answer: status, archive path and digests."""
    entry['model_version'] = version
    entry['archive_name'] = archive_name(entry['role'], entry['new_party_id'], entry['model_id'], version)
    entry['retmsg'] = answer.get('retmsg')
    expected = os.path.join(directory, entry['archive_name']) if directory else None
    if not answer.get('ok', True):
        entry.update(status='already_migrated', archive_path=expected)
        _set_archive_facts(module, entry, expected)
        return
    entry['status'] = 'migrated'
    reported = parse_archive_path(answer.get('retmsg'))
    if reported and os.path.basename(reported) != entry['archive_name']:
        module.warn('FATE Flow reported archive %s for %s %s, expected a file named %s'
                    % (reported, entry['role'], entry['old_party_id'], entry['archive_name']))
    entry['archive_path'] = reported or expected
    if _set_archive_facts(module, entry, entry['archive_path']) or _set_archive_facts(module, entry, expected):
        return
    if caps.records_archive_sha256 and caps.supports_query:
        try:
            row = client.find_model(entry['model_id'], version, entry['role'], entry['new_party_id'])
        except FlowError:
            row = None
        if row and row.get('archive_sha256'):
            entry['archive_sha256'] = row['archive_sha256']


def run(module, client, spec):
    params = module.params
    _role, migrate_role, execute_party, _initiator, mapping = spec
    new_model_id = gen_model_id(migrate_role)
    version = params['unify_model_version'] or None

    caps = client.capabilities
    if not caps.supports_migrate:
        if caps.version and caps.version[:2] == (1, 5):
            raise FlowError('FATE Flow %s cannot migrate models: every migration on FATE 1.5.0 fails on a FATE bug '
                            "('function' object has no attribute 'get'). Run the migration on a FATE 1.5.1+ cluster."
                            % caps.flow_version, reason=FlowError.UNSUPPORTED)
        raise FlowError('FATE Flow %s has no model migration API (it appeared in FATE 1.5; use 1.5.1+).'
                        % caps.flow_version, reason=FlowError.UNSUPPORTED)
    directory = os.path.join(params['fate_home'], caps.temp_dir) if params['fate_home'] else params['archive_dir']

    parties = plan(execute_party, mapping, new_model_id, version, directory)
    if version:
        find_done(module, client, caps, parties, migrate_role)
    pending = [entry for entry in parties if entry['status'] is None]
    before = sorted(entry['archive_name'] or entry['party_model_id'] for entry in parties if entry['status'])
    result = dict(changed=bool(pending), model_id=new_model_id, model_version=version,
                  source_model_id=params['model_id'], source_model_version=params['model_version'],
                  federated_mode=params['federated_mode'], parties=parties)

    if pending and not module.check_mode:
        job_id, answers = submit(client, caps, params, spec, pending, parties)
        version = version or job_id
        result.update(model_version=version, job_id=job_id)
        for entry in pending:
            record(module, client, caps, entry, answers.get((entry['role'], str(entry['old_party_id'])), {}),
                   version, directory)
        result['changed'] = any(entry['status'] == 'migrated' for entry in parties)
    else:
        for entry in pending:
            entry['status'] = 'would_migrate'
    if module._diff:
        result['diff'] = dict(before={'archives': before},
                              after={'archives': sorted(e['archive_name'] or e['party_model_id'] for e in parties)})
    return result


def main():
    module = AnsibleModule(**flow_module_kwargs(
        dict(
            model_id=dict(type='str', required=True),
            model_version=dict(type='str', required=True),
            role=dict(type='dict', required=True),
            migrate_role=dict(type='dict', required=True),
            execute_party=dict(type='dict'),
            migrate_initiator=dict(type='dict'),
            federated_mode=dict(type='str', choices=['SINGLE', 'MULTIPLE'], default='MULTIPLE'),
            unify_model_version=dict(type='str'),
            archive_dir=dict(type='path'),
            fate_home=dict(type='path'),
        ),
        mutually_exclusive=[['archive_dir', 'fate_home']],
        supports_check_mode=True,
    ))
    try:
        # The names and role maps are checked before FATE Flow is contacted.
        check_model_names(module.params, 'model_id', 'model_version')
        check_name(module.params['unify_model_version'], 'unify_model_version', required=False)
        spec = validate_migrate_roles(module.params['role'], module.params['migrate_role'],
                                      module.params['execute_party'], module.params['migrate_initiator'])
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    client = FlowClient(module)
    try:
        result = run(module, client, spec)
    except ModelSpecError as exc:
        module.fail_json(msg=str(exc))
    except FlowError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
