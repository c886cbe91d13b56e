# -*- coding: utf-8 -*-
# Test helper, not shipped with the collection (tests/sandbox is outside galaxy.yml's build).
"""Aggregate callback for tests/sandbox/ansible_helpers.py: writes every task result as JSON.

ansible-core 2.19 ships no JSON stdout callback (ansible.posix.json is not installed here), so the
tests keep the default screen output for people and read the results from the file named by the
environment variable FATE_RESULTS_FILE, written when the playbook ends:

    {"tasks": [{"name", "action", "host", "status": ok|changed|failed|skipped|unreachable,
                "ignore_errors", "seconds", "result": {...}}], "stats": {"<host>": {"ok": n, ...}}}
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys

DOCUMENTATION = r'''
name: fate_results
type: aggregate
short_description: write task results to a JSON file (fate.flow sandbox tests)
description:
  - Writes every task result to the file named by E(FATE_RESULTS_FILE) when the playbook ends.
requirements:
  - enable in callbacks_enabled
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'fate_results'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._tasks = []
        self._started = time.time()

    def _record(self, result, status, ignore_errors=False):
        data = strip_internal_keys(module_response_deepcopy(result.result))
        self._tasks.append(dict(name=result.task_name or result._task.get_name(), action=result._task.action,
                                host=result._host.get_name(), status=status, ignore_errors=bool(ignore_errors),
                                result=data, seconds=round(time.time() - self._started, 3)))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started = time.time()

    def v2_runner_on_ok(self, result):
        self._record(result, 'changed' if result.result.get('changed') else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed', ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('FATE_RESULTS_FILE')
        if not path:
            return
        summary = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        with open(path, 'w') as handle:
            json.dump(dict(tasks=self._tasks, stats=summary), handle, indent=1, default=str, sort_keys=True)
