# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """Attribute descriptions shared by the fate.flow modules (fate.flow.attributes).

    Modules state their own C(support) for check_mode, diff_mode and idempotent.
    """

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything in FATE Flow.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description:
      - Running the task again with the same options changes nothing and reports C(changed=false).
  action_group:
    description: Part of the C(fate.flow.fate_flow) action group, for setting the connection options with C(module_defaults).
    support: full
    membership:
      - fate.flow.fate_flow
'''

    # Modules that work on files of the host they run on (model_transfer, run_lock, run_report); each states its own
    # support for check_mode, diff_mode and idempotent.
    HOST_MODULE = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description:
      - Running the task again with the same options changes nothing and reports C(changed=false).
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
'''

    # Read-only modules (model_info, flow_info).
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: This module only reads from FATE Flow, so it behaves the same in check mode.
  diff_mode:
    support: N/A
    details: This module changes nothing.
  idempotent:
    support: full
'''
