# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs a module's main() in-process with given arguments and returns what it passed to exit_json/fail_json."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class _Exit(Exception):
    pass


def run_main(module, args, check_mode=False):
    """The result dict of ``module.main()`` (``failed=True`` and ``msg`` when it failed)."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        raise _Exit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg)
        raise _Exit(kwargs)

    with mock.patch.object(basic.AnsibleModule, 'exit_json', exit_json), \
            mock.patch.object(basic.AnsibleModule, 'fail_json', fail_json), patch_module_args(args):
        with pytest.raises(_Exit) as info:
            module.main()
    return info.value.args[0]
