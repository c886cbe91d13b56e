# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The documentation of every module loads with its fragments, and matches its argument spec."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

MODULES = ['flow_info', 'model_bind', 'model_deploy', 'model_import', 'model_info', 'model_load', 'model_migrate']
ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')


class _Captured(Exception):
    pass


def _argument_spec(monkeypatch, name):
    module = importlib.import_module('ansible_collections.fate.flow.plugins.modules.' + name)

    def capture(self, **kwargs):
        raise _Captured(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, '__init__', capture)
    with patch_module_args({}):
        with pytest.raises(_Captured) as info:
            module.main()
    return module, info.value.args[0]


def _fragment(name, var='DOCUMENTATION'):
    fragment = importlib.import_module('ansible_collections.fate.flow.plugins.doc_fragments.' + name)
    return yaml.safe_load(getattr(fragment.ModuleDocFragment, var))


def test_action_group_lists_every_module():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        runtime = yaml.safe_load(handle)
    assert sorted(runtime['action_groups']['fate_flow']) == MODULES
    assert _fragment('attributes')['attributes']['action_group']['membership'] == ['fate.flow.fate_flow']


@pytest.mark.parametrize('name', MODULES)
def test_docs_match_argument_spec(monkeypatch, name):
    module, kwargs = _argument_spec(monkeypatch, name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)
    assert doc['module'] == name
    assert 'fate.flow.connection' in doc['extends_documentation_fragment']
    options = dict(_fragment('connection')['options'])
    options.update(doc.get('options') or {})
    spec = kwargs['argument_spec']
    assert set(options) == set(spec)
    for option, spec_entry in spec.items():
        documented = options[option]
        assert documented.get('type', 'str') == spec_entry.get('type', 'str'), option
        assert documented.get('default') == spec_entry.get('default'), option
        assert bool(documented.get('required')) == bool(spec_entry.get('required')), option
        assert documented.get('choices') == spec_entry.get('choices'), option
        assert documented.get('elements') == spec_entry.get('elements'), option
    attributes = doc.get('attributes') or {}
    if 'fate.flow.attributes.info_module' not in doc['extends_documentation_fragment']:
        assert set(attributes) >= {'check_mode', 'diff_mode', 'idempotent'}
    assert kwargs['supports_check_mode'] is True
