"""Issue #3: `ansible-doc fate.flow.<module>` renders every FATE Flow module of the staged collection."""
import json
import re

import pytest

from ansible_helpers import ansible_doc

pytestmark = pytest.mark.timeout(300)

MODULES = ["flow_info", "model_info", "model_deploy", "model_migrate", "model_import", "model_load", "model_bind"]
NAMES = ["fate.flow.%s" % m for m in MODULES]


def test_ansible_doc_renders_every_module(tmp_path):
    text = ansible_doc(tmp_path, *NAMES)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "WARNING" not in text.stderr and "ERROR" not in text.stderr, text.stderr
    blocks = text.stdout.split("> MODULE ")[1:]
    assert [block.split(None, 1)[0] for block in blocks] == NAMES
    for name, block in zip(NAMES, blocks):
        for section in ("OPTIONS (= indicates it is required):", "ATTRIBUTES:", "EXAMPLES:", "RETURN VALUES:"):
            assert section in block, "%s: no %r in ansible-doc's output" % (name, section)
        for option in ("flow_url", "secret_key", "timeout"):     # the fate.flow.connection fragment
            assert re.search(r"^[-=] %s\b" % option, block, re.M), "%s: option %s not rendered" % (name, option)

    data = ansible_doc(tmp_path, "--json", *NAMES)
    assert data.returncode == 0, data.stderr
    docs = json.loads(data.stdout)
    assert sorted(docs) == sorted(NAMES)
    for name, entry in docs.items():
        doc = entry["doc"]
        assert doc["module"] == name.rsplit(".", 1)[1] and doc["short_description"]
        assert doc["attributes"]["check_mode"]["support"] == "full", name     # "check mode: all seven"
        assert doc["options"]["secret_key"]["type"] == "str" and doc["options"]["flow_url"]["required"] is True
        assert entry["examples"] and entry["return"], name
