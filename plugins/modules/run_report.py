#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: run_report
short_description: Write the JSON and text report of a fate.flow run
version_added: 0.1.0
description:
  - Writes O(data) as C(<dir>/<name>.json) and O(text) as C(<dir>/<name>.txt) in one module run, creating O(dir)
    with O(dir_mode) when it is missing.
  - Each file is written under a temporary name in O(dir), flushed to disk and renamed into place, so a reader never
    sees half a report; both are created with O(mode), by default C(0600), because reports name hosts, paths and
    models.
  - The C(report) role writes the run report with it.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  dir:
    description: Directory of the report files on the host the module runs on.
    type: path
    required: true
  name:
    description: File name of the report without extension; it may not contain C(/).
    type: str
    required: true
  data:
    description: The report, written as indented JSON with sorted keys.
    type: dict
    required: true
  text:
    description: The human-readable report. Not written when omitted.
    type: str
  mode:
    description: Mode of the report files.
    type: raw
    default: '0600'
  dir_mode:
    description: Mode of O(dir) when the module creates it (an existing directory keeps its mode).
    type: raw
    default: '0700'
attributes:
  check_mode:
    support: full
    details: Check mode writes nothing and reports whether the files would change.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Files that already hold the same content are not rewritten; only a mode other than O(mode) is corrected.
extends_documentation_fragment:
  - fate.flow.attributes.host_module
seealso:
  - module: fate.flow.run_lock
'''

EXAMPLES = r'''
- name: Write the run report
  fate.flow.run_report:
    dir: /var/log/fate_flow_reports
    name: "fate_flow_{{ fate_unify_model_version }}"
    data: "{{ report_data }}"
    text: "{{ lookup('ansible.builtin.template', 'report.txt.j2') }}"
  delegate_to: localhost
'''

RETURN = r'''
json_path:
  description: The JSON report.
  returned: always
  type: str
  sample: /tmp/fate_flow_reports/fate_flow_report.json
text_path:
  description: The text report.
  returned: when O(text) is given
  type: str
  sample: /tmp/fate_flow_reports/fate_flow_report.txt
'''

import json
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes


def _mode(module, value, option):
    try:
        return int(value, 8) if isinstance(value, str) else int(value)
    except ValueError:
        module.fail_json(msg='%s must be an octal mode such as 0600, got %r' % (option, value))


def _same(path, content):
    try:
        with open(path, 'rb') as handle:
            return handle.read() == content
    except OSError:
        return False


def _file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write(path, content, mode):
    """Write content to path through a temporary file in the same directory, then rename it into place."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type='path', required=True),
            name=dict(type='str', required=True),
            data=dict(type='dict', required=True),
            text=dict(type='str'),
            mode=dict(type='raw', default='0600'),
            dir_mode=dict(type='raw', default='0700'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p['name']
    if not name or '/' in name or name in ('.', '..'):
        module.fail_json(msg='name must be a file name without "/", got %r' % name)
    mode, dir_mode = _mode(module, p['mode'], 'mode'), _mode(module, p['dir_mode'], 'dir_mode')
    files = [(os.path.join(p['dir'], name + '.json'),
              to_bytes(json.dumps(p['data'], indent=2, sort_keys=True) + '\n'))]
    if p['text'] is not None:
        files.append((os.path.join(p['dir'], name + '.txt'), to_bytes(p['text'])))
    result = dict(changed=False, json_path=files[0][0])
    if len(files) > 1:
        result['text_path'] = files[1][0]
    pending = [(path, content) for path, content in files if not _same(path, content)]
    # a report with the right content but another mode (an older run, a hand copy) gets the mode back
    loose = [path for path, content in files if (path, content) not in pending and _file_mode(path) != mode]
    result['changed'] = bool(pending or loose) or not os.path.isdir(p['dir'])
    if module.check_mode or not result['changed']:
        module.exit_json(**result)
    try:
        if not os.path.isdir(p['dir']):
            os.makedirs(p['dir'], dir_mode)
            os.chmod(p['dir'], dir_mode)        # makedirs applies the umask
        for path, content in pending:
            _write(path, content, mode)
        for path in loose:
            os.chmod(path, mode)
    except OSError as exc:
        module.fail_json(msg='cannot write the report in %s: %s. Choose a writable directory (fate_report_dir) '
                             'and run again.' % (p['dir'], exc.strerror or exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
