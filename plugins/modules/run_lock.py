#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: run_lock
short_description: Keep two fate.flow runs from working on the same party host at once
version_added: 0.1.0
description:
  - Takes or releases a run lock on the host the task runs for (with C(delegate_to), the delegated host). The lock
    is a small JSON file, by default C(fate_flow_run.lock) in the party's FATE home, that records the run id, the controller
    host, the C(ansible-playbook) process id and the start time of the run that holds it.
  - The lock is created atomically (its complete content is hard-linked into place, which fails when a lock exists,
    like C(O_EXCL)), with mode C(0600).
  - When another run holds the lock, the task waits up to O(wait_timeout) seconds for it, then fails with a message
    that names the host, the lock file and the run that holds it. Nothing else is changed.
  - A lock is taken over (and the takeover reported) when it is stale, that is when it is older than O(max_age)
    seconds, or when it was taken from this same controller host by an C(ansible-playbook) process that no longer
    runs (for example a run that was killed). A lock taken from another controller cannot be checked that way; it
    waits for O(max_age), or for an operator to remove the file.
  - Taking the lock again in the same run (same O(run_id)) changes nothing, so several playbooks of one run can
    each take it. Releasing removes the lock only when this run holds it.
  - The fate.flow playbooks take the lock on every destination party host first and release it at the end (see
    C(docs/pipeline.md)).
  - This module has a companion action plugin, which fills in the controller's identity and waits on the
    controller.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  state:
    description:
      - V(acquired) takes the lock (waiting up to O(wait_timeout)), V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  path:
    description:
      - Absolute path of the lock file on the host. Its directory must exist.
      - The fate.flow playbooks use C(<fate_home>/fate_flow_run.lock), or C(fate_flow_run.lock) in the directory
        given by the C(fate_run_lock_dir) variable.
    type: path
    required: true
  run_id:
    description:
      - Identifies this run. Taking the lock again with the same id is a no-op, and only this id can release it.
      - By default C(<controller host>:<ansible-playbook pid>:<its start time>), the same for every task of one
        C(ansible-playbook) run. Set it (for example to an AWX job id) to share a lock between runs on purpose.
    type: str
  wait_timeout:
    description:
      - Seconds to wait for a lock held by another run before failing. V(0) fails at once.
      - Ignored in check mode and by O(state=released).
    type: int
    default: 0
  max_age:
    description:
      - Seconds after which a lock held by another run counts as stale and is taken over. Set it above the
        longest run you expect (a large transfer can take hours). V(0) or less never takes over by age.
    type: int
    default: 86400
  controller:
    description:
      - Controller host name recorded in the lock. Filled in by the action plugin; do not set it.
    type: str
  controller_pid:
    description:
      - Process id of the C(ansible-playbook) run recorded in the lock. Filled in by the action plugin; do not set it.
    type: int
  controller_pid_start:
    description:
      - Start time (clock ticks since boot) of that process, to tell it from a later process with the same id.
        Filled in by the action plugin; do not set it.
    type: int
  break_run_id:
    description:
      - Run id of a holder that the controller found gone (its C(ansible-playbook) process no longer runs); that lock
        is taken over. Set by the action plugin; do not set it.
    type: str
attributes:
  check_mode:
    support: full
    details: Check mode reads the lock and reports whether this run could take it, never creates or removes it, does
      not wait, and does not fail when another run holds the lock (it warns).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Taking a lock this run already holds, or releasing one it does not hold, reports C(changed=false).
  action:
    description: Has a companion action plugin that runs on the controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
extends_documentation_fragment:
  - fate.flow.attributes.host_module
notes:
  - The lock directory must be on a file system that the party's runs share, normally local disk. Stale-lock
    takeover and release are serialised with C(flock) on the directory where the file system supports it.
seealso:
  - module: fate.flow.model_transfer
'''

EXAMPLES = r'''
- name: Take the run lock on every destination party, one host after the other
  fate.flow.run_lock:
    path: "{{ hostvars[item].fate_home }}/fate_flow_run.lock"
    wait_timeout: 600
  loop: "{{ groups['fate_destination'] | sort }}"
  delegate_to: "{{ item }}"
  run_once: true

- name: Release it at the end of the run
  fate.flow.run_lock:
    path: "{{ hostvars[item].fate_home }}/fate_flow_run.lock"
    state: released
  loop: "{{ groups['fate_destination'] | sort }}"
  delegate_to: "{{ item }}"
  run_once: true
'''

RETURN = r'''
path:
  description: The lock file.
  returned: always
  type: str
  sample: /data/projects/fate/fate_flow_run.lock
run_id:
  description: This run's id.
  returned: always
  type: str
  sample: awx-node-1:41234:886512
outcome:
  description:
    - V(acquired), V(taken_over) (a stale lock was replaced), V(already_held) (this run held it already), V(held)
      (another run holds it), V(released), V(not_held) (nothing to release for this run); in check mode
      V(would_acquire), V(would_take_over) or V(would_release).
  returned: always
  type: str
  sample: acquired
acquired:
  description: Whether this run holds the lock after the task (in check mode, whether it could take it).
  returned: always
  type: bool
holder:
  description: What the lock file records (the run that holds it, or held it before a takeover or release); null
    when there was no lock.
  returned: always
  type: dict
  sample:
    run_id: awx-node-1:41234:886512
    controller: awx-node-1
    controller_pid: 41234
    host: fate-guest-01
    started_at: '2025-03-01T10:00:00Z'
stale_holder:
  description: The holder of a stale lock that this run took over.
  returned: when a stale lock was taken over
  type: dict
waited:
  description: Seconds the action plugin waited for another run's lock.
  returned: with state=acquired
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fate.flow.plugins.module_utils import _run_lock as rl


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', default='acquired', choices=['acquired', 'released']),
            path=dict(type='path', required=True),
            run_id=dict(type='str'),
            wait_timeout=dict(type='int', default=0),
            max_age=dict(type='int', default=rl.DEFAULT_MAX_AGE),
            controller=dict(type='str'),
            controller_pid=dict(type='int'),
            controller_pid_start=dict(type='int'),
            break_run_id=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p['path']
    default_id = '%s:%s:%s' % (p['controller'] or 'unknown', p['controller_pid'] or 0, p['controller_pid_start'] or 0)
    run_id = p['run_id'] or default_id
    result = dict(changed=False, path=path, run_id=run_id)
    if not path.startswith('/'):
        module.fail_json(msg='path must be absolute, got %r' % path, **result)
    try:
        if p['state'] == 'released':
            if module.check_mode:
                current = rl.read(path)
                mine = current is not None and current.get('run_id') == run_id
                result.update(changed=mine, outcome='would_release' if mine else 'not_held', acquired=False,
                              holder=current)
            else:
                removed, current = rl.release(path, run_id)
                result.update(changed=removed, outcome='released' if removed else 'not_held', acquired=False,
                              holder=current)
            module.exit_json(**result)
        holder = rl.new_holder(run_id, p['controller'] or 'unknown', p['controller_pid'], p['controller_pid_start'])
        outcome, current = rl.acquire_once(path, holder, p['max_age'], p['break_run_id'], check=module.check_mode)
    except rl.LockError as exc:
        module.fail_json(msg=str(exc), **result)
    result['outcome'] = {'mine': 'already_held'}.get(outcome, outcome)
    result['acquired'] = outcome != 'held'
    result['changed'] = outcome in ('acquired', 'taken_over', 'would_acquire', 'would_take_over')
    if outcome in ('taken_over', 'would_take_over'):
        result['stale_holder'] = current
        result['holder'] = holder
    elif outcome in ('acquired', 'would_acquire'):
        result['holder'] = holder
    else:
        result['holder'] = current
    module.exit_json(**result)


if __name__ == '__main__':
    main()
