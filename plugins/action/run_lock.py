# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of fate.flow.run_lock (documentation: plugins/modules/run_lock.py).

On the controller it records who runs (host name, the ansible-playbook process id and its start time), derives the
default run id from them, and waits: the module on the party host makes one attempt per call; while another run
holds the lock, the plugin asks again every few seconds until wait_timeout. A lock held by an ansible-playbook
process of this same controller that no longer runs is stale: the plugin names its run id to the module, which
takes it over.
"""

from __future__ import annotations

import os
import socket
import time

from ansible.plugins.action import ActionBase

from ansible_collections.fate.flow.plugins.module_utils import _run_lock as rl

POLL_SECONDS = 2.0


def controller_identity():
    """(host name, pid of ansible-playbook, its start time). Tasks run in worker processes forked from the
    ansible-playbook process, so the parent of this process is the run itself."""
    pid = os.getppid()
    return socket.gethostname(), pid, rl.process_start(pid)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        controller, pid, start = controller_identity()
        args.update(controller=controller, controller_pid=pid, controller_pid_start=start)
        args.pop('break_run_id', None)
        if not args.get('run_id'):
            args['run_id'] = '%s:%d:%s' % (controller, pid, start or 0)
        state = args.get('state') or 'acquired'
        try:
            wait = max(0, int(args.get('wait_timeout') or 0))
        except (TypeError, ValueError):
            wait = 0        # the module rejects it with its own message
        host = self._task.delegate_to or task_vars.get('inventory_hostname')
        started = time.monotonic()
        while True:
            answer = self._execute_module(module_name='fate.flow.run_lock', module_args=args, task_vars=task_vars)
            if answer.get('failed') or state != 'acquired' or answer.get('outcome') != 'held':
                break
            holder = answer.get('holder') or {}
            if (not args.get('break_run_id') and holder.get('run_id') and holder.get('controller') == controller
                    and not rl.process_alive(holder.get('controller_pid'), holder.get('controller_pid_start'))):
                args['break_run_id'] = holder['run_id']     # its ansible-playbook is gone: take it over
                continue
            if self._task.check_mode or self._play_context.check_mode:
                answer.setdefault('warnings', []).append(
                    'check mode: %s on %s is held by %s; a real run would wait for it'
                    % (answer.get('path'), host, rl.describe(holder)))
                break
            waited = time.monotonic() - started
            if waited >= wait:
                answer.update(failed=True, msg=self._busy_message(answer, host, task_vars, waited, wait, args))
                break
            time.sleep(min(POLL_SECONDS, wait - waited))
        if state == 'acquired':
            answer['waited'] = round(time.monotonic() - started, 1)
        if answer.get('outcome') == 'taken_over':
            answer.setdefault('warnings', []).append(
                'took over the stale run lock %s on %s from %s' % (answer.get('path'), host,
                                                                   rl.describe(answer.get('stale_holder'))))
        result.update(answer)
        return result

    @staticmethod
    def _party(task_vars, host):
        try:
            party = task_vars['hostvars'][host].get('fate_party_id')
        except (KeyError, TypeError, AttributeError):
            party = None
        return ' (party %s)' % party if party not in (None, '') else ''

    def _busy_message(self, answer, host, task_vars, waited, wait, args):
        holder = answer.get('holder') or {}
        path = answer.get('path')
        max_age = args.get('max_age', rl.DEFAULT_MAX_AGE)
        same = holder.get('controller') == args['controller']
        return (
            'run lock on %s%s: another fate.flow run is working on this host: %s holds %s. This run %s and changed '
            'nothing. Let that run finish, then run again (or wait longer: wait_timeout, fate_run_lock_wait in the '
            'fate.flow playbooks). If that run is no longer running%s, give its locks back with '
            '`ansible-playbook fate.flow.run_lock -i <inventory> -e fate_run_lock_state=released -e \'fate_run_id=%s\'` '
            '(playbooks/run_lock.yml in a checkout) or remove %s on %s%s.' % (
                host, self._party(task_vars, host), rl.describe(holder), path,
                'waited %d s for it' % waited if wait else 'did not wait (wait_timeout=0)',
                '' if same else ' (it was started from controller %s, so this controller cannot check its process)'
                % holder.get('controller'),
                holder.get('run_id'), path, host,
                ', or wait until the lock is older than max_age (%s s), when it is taken over' % max_age
                if max_age and int(max_age) > 0 else ''))
