# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

"""PRIVATE to the fate.flow collection: may change at any time, without notice.

How a FATE Flow finds FATE-Serving, as written in its config files, and the targeted text edits
that change it while every other byte of the file (keys, order, comments, quoting, line endings)
stays as it was.

* ``LAYOUTS`` is the one place that knows which file of which FATE release holds which key.
* ``YamlDocument`` and ``JsonDocument`` locate a key's value in the text (YAML: block structure by
  indentation, flow collections with a small tokenizer; JSON: a span-recording parser), replace only
  that text, and then check that the result parses to the original data with only the owned keys
  changed. Anything else (a file that does not parse, a duplicated key, an edit that would touch
  other data) raises ``ServingLinkError`` and nothing is written.

PyYAML is needed for YAML files; the caller checks ``HAS_YAML`` (the module reports it with
``missing_required_lib``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import traceback

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()


MASK = '********'


class ServingLinkError(Exception):
    """A refusal: the message says why; nothing has been written."""


# ------------------------------------------------------------------------------------------------
# Version-specific knowledge (the only place)
# ------------------------------------------------------------------------------------------------

# FATE <= 1.4: servings in arch/conf/server_conf.json (servers.servings, a list); use_registry and
# zookeeper in arch/conf/base_conf.yaml. FATE 1.5 - 1.11: everything in conf/service_conf.yaml
# (servings: a mapping with hosts, or a list, or in 1.7+ a single address). FATE Flow 1.7+ also
# merges conf/local.service_conf.yaml on top of service_conf.yaml.
LAYOUTS = {
    'arch_conf': {
        'versions': '<= 1.4',
        'files': {
            'arch/conf/server_conf.json': 'json',
            'arch/conf/base_conf.yaml': 'yaml',
        },
        'servings': ('arch/conf/server_conf.json', ('servers', 'servings')),
        'use_registry': ('arch/conf/base_conf.yaml', ('use_registry',)),
        'zookeeper': ('arch/conf/base_conf.yaml', ('zookeeper',)),
        'override': None,
    },
    'service_conf': {
        'versions': '1.5 - 1.11',
        'files': {
            'conf/service_conf.yaml': 'yaml',
        },
        'servings': ('conf/service_conf.yaml', ('servings',)),
        'use_registry': ('conf/service_conf.yaml', ('use_registry',)),
        'zookeeper': ('conf/service_conf.yaml', ('zookeeper',)),
        'override': 'conf/local.service_conf.yaml',
    },
}

# Values of use_registry that FATE Flow reads as "on". 1.7+ also accept the string "zookeeper".
_REGISTRY_STRING_FROM = (1, 7)


def parse_version(text):
    """'1.11.4' / 'v1.6' -> (1, 11, 4) / (1, 6); ServingLinkError when it is not a version."""
    match = re.match(r'^\s*v?(\d+)\.(\d+)(?:\.(\d+))?', str(text or ''))
    if not match:
        raise ServingLinkError('cannot read a FATE version from %r' % (text,))
    return tuple(int(part) for part in match.groups() if part is not None)


def layout_for_version(version):
    """The layout name for a FATE version tuple; refuses FATE 2.x and anything before 1.0."""
    if version[0] != 1:
        raise ServingLinkError('FATE %s is not supported: the serving link is written for FATE 1.x '
                               '(1.4 to 1.11)' % '.'.join(str(v) for v in version))
    return 'arch_conf' if version[:2] <= (1, 4) else 'service_conf'


def read_fate_env(fate_home):
    """The FATE= value of <fate_home>/fate.env (FATE 1.5+), or None."""
    path = os.path.join(fate_home, 'fate.env')
    try:
        with open(path, 'rb') as handle:
            lines = handle.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return None
    for line in lines:
        key, sep, value = line.partition('=')
        if sep and key.strip() == 'FATE' and value.strip():
            return value.strip()
    return None


def detect_layout(fate_home, fate_version=None):
    """(layout name, version tuple or None, how it was found)."""
    if not os.path.isdir(fate_home):
        raise ServingLinkError('fate_home %s is not a directory' % fate_home)
    if fate_version:
        version = parse_version(fate_version)
        return layout_for_version(version), version, 'fate_version'
    env_version = read_fate_env(fate_home)
    if env_version:
        version = parse_version(env_version)
        return layout_for_version(version), version, 'fate.env'
    present = [name for name, layout in sorted(LAYOUTS.items())
               if all(os.path.isfile(os.path.join(fate_home, rel)) for rel in layout['files'])]
    if len(present) == 1:
        return present[0], None, 'layout'
    if not present:
        raise ServingLinkError(
            'cannot tell the FATE version of %s: no fate.env, and neither conf/service_conf.yaml (FATE 1.5+) '
            'nor arch/conf/server_conf.json with arch/conf/base_conf.yaml (FATE 1.4) exist there; check fate_home '
            'or set fate_version' % fate_home)
    raise ServingLinkError('%s holds the config files of both FATE 1.4 and FATE 1.5+ and has no fate.env; '
                           'set fate_version' % fate_home)


def registry_is_on(value, version):
    if value is True:
        return True
    if isinstance(value, str) and value.strip().lower() == 'zookeeper':
        return version is None or version[:2] >= _REGISTRY_STRING_FROM
    return False


def plan_changes(layout_name, data, mode, servings=None, zookeeper=None, version=None):
    """What to set, as {relative file: [(path, value), ...]}, given the parsed files ``data``
    ({relative file: parsed content}). Only values that differ from the file are listed."""
    layout = LAYOUTS[layout_name]
    changes = {}

    def want(item, path, value, same=None):
        rel, base = layout[item]
        full = base + path
        found, current = get_path(data[rel], full)
        if same(current) if same else (found and current == value):
            return
        changes.setdefault(rel, []).append((full, value))

    if mode == 'servings':
        rel, base = layout['servings']
        found, current = get_path(data[rel], base)
        if layout_name == 'service_conf' and not (found and isinstance(current, list)):
            # a mapping {hosts: [...]} as FATE ships it; a single address (1.7+) or nothing becomes that too
            if found and current is not None and not isinstance(current, dict):
                changes.setdefault(rel, []).append((base, {'hosts': list(servings)}))
            else:
                want('servings', ('hosts',), list(servings))
        else:
            want('servings', (), list(servings))
        want('use_registry', (), False, same=lambda cur: not registry_is_on(cur, version))
    else:
        want('use_registry', (), True, same=lambda cur: registry_is_on(cur, version))
        want('zookeeper', ('hosts',), list(zookeeper['hosts']))
        want('zookeeper', ('use_acl',), bool(zookeeper['use_acl']))
        for key in ('user', 'password'):
            if zookeeper.get(key) is not None:
                want('zookeeper', (key,), zookeeper[key])
    return changes


def get_path(data, path):
    """(found, value) of a key path in parsed data."""
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def set_path(data, path, value):
    """A deep copy of ``data`` with ``path`` set (missing or null parents become mappings)."""
    result = copy.deepcopy(data)
    node = result
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)
    return result


def document_for(kind, text, name):
    if kind == 'json':
        return JsonDocument(text, name)
    return YamlDocument(text, name)


def decode(raw, name):
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise ServingLinkError('%s is not UTF-8 text; refusing to edit it' % name)


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------

def _newline_of(text):
    return '\r\n' if '\r\n' in text else '\n'


def _line_spans(text):
    """[(start, end_of_content, end_with_newline)] for every line."""
    spans = []
    pos = 0
    length = len(text)
    while pos < length:
        nl = text.find('\n', pos)
        if nl < 0:
            end = full = length
        else:
            full = nl + 1
            end = nl
        content_end = end - 1 if end > pos and text[end - 1] == '\r' else end
        spans.append((pos, content_end, full))
        pos = full
    return spans


# ------------------------------------------------------------------------------------------------
# YAML
# ------------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r'''(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\[\]{},:&*!|>%@`-][^#]*?|-[^\s#][^#]*?)[ \t]*:(?=[ \t]|$)''')
_FLOW_PLAIN_BAD = set(',[]{}')


def _unquote_key(token):
    if token.startswith('"'):
        try:
            value = yaml.safe_load(token)
        except yaml.YAMLError:
            return token
        return value if isinstance(value, str) else token
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    return token


class _Node(object):
    """Where a value sits in the text.

    kind: 'empty' (nothing after the colon), 'scalar' (inline), 'flow' ([...] or {...}), 'block'
    (lines below the key). ``start``/``end``: the value's text (for 'block' from the start of the
    first body line to the end of the last content line, newline included). ``colon``: offset just
    after the key's colon (None for a flow item). ``indent``: the key's indent (block keys).
    """

    def __init__(self, kind, start, end, colon=None, indent=None, line_end=None, flow=False):
        self.kind = kind
        self.start = start
        self.end = end
        self.colon = colon
        self.indent = indent
        self.line_end = line_end      # end of the key line's content (block keys)
        self.flow = flow              # the node is an item inside a flow collection


def _scan_quoted(text, pos):
    """End offset (exclusive) of the quoted scalar starting at ``pos``."""
    quote = text[pos]
    i = pos + 1
    while i < len(text):
        char = text[i]
        if quote == '"' and char == '\\':
            i += 2
            continue
        if char == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise ServingLinkError('unterminated quoted scalar')


def _scan_flow(text, pos):
    """End offset (exclusive) of the flow collection opening at ``pos``."""
    depth = 0
    i = pos
    prev = ''
    while i < len(text):
        char = text[i]
        if char in '"\'' and prev in ('', '[', '{', ',', ':', ' ', '\t', '\n', '\r'):
            i = _scan_quoted(text, i)
            prev = '"'
            continue
        if char == '#' and prev in (' ', '\t', '\n', '\r'):
            nl = text.find('\n', i)
            i = len(text) if nl < 0 else nl
            continue
        if char in '[{':
            depth += 1
        elif char in ']}':
            depth -= 1
            if depth == 0:
                return i + 1
        prev = char
        i += 1
    raise ServingLinkError('unterminated flow collection')


def _flow_items(text, start, end):
    """Items of the flow collection text[start:end] (brackets included), at depth 1:
    [(item_start, item_end, key or None, key_end, value_start, value_end)], spans trimmed."""
    items = []
    i = start + 1
    close = end - 1
    item_start = None
    sep = None
    last = i
    while i < close:
        char = text[i]
        if char in ' \t\r\n':
            i += 1
            continue
        if char == '#' and text[i - 1] in ' \t\r\n':
            nl = text.find('\n', i)
            i = close if nl < 0 or nl > close else nl
            continue
        if item_start is None:
            item_start = i
            sep = None
        if char in '"\'' and (i == item_start or text[i - 1] in ' \t\r\n:'):
            i = _scan_quoted(text, i)
            last = i
            continue
        if char in '[{':
            i = _scan_flow(text, i)
            last = i
            continue
        if char == ':' and sep is None and (text[i + 1:i + 2] in (' ', '\t', '\r', '\n', ',', '}', ']')
                                            or text[i - 1] in '"\''):
            sep = i
            i += 1
            last = i
            continue
        if char == ',':
            items.append(_flow_item(text, item_start, last, sep))
            item_start = None
            i += 1
            continue
        i += 1
        last = i
    if item_start is not None:
        items.append(_flow_item(text, item_start, last, sep))
    return items


def _flow_item(text, start, end, sep):
    if sep is None or sep >= end:
        return (start, end, None, None, start, end)
    key = _unquote_key(text[start:sep].rstrip())
    value_start = sep + 1
    while value_start < end and text[value_start] in ' \t\r\n':
        value_start += 1
    return (start, end, key, sep, value_start, max(value_start, end))


def _comment_start(content):
    """Offset of an end-of-line comment in a line's content (outside quotes and brackets), or None."""
    i = 0
    prev = ' '
    while i < len(content):
        char = content[i]
        if char in '"\'' and prev in (' ', '\t', ':', '[', '{', ',', '-'):
            try:
                i = _scan_quoted(content, i)
            except ServingLinkError:
                return None
            prev = '"'
            continue
        if char == '#' and prev in (' ', '\t'):
            return i
        prev = char
        i += 1
    return None


class YamlDocument(object):
    """A YAML file's text with targeted edits of key paths."""

    def __init__(self, text, name='file'):
        self.text = text
        self.name = name
        self.newline = _newline_of(text)
        try:
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
            problem = getattr(exc, 'problem', None) or getattr(exc, 'context', None) or _one_line(exc)
            raise ServingLinkError(unparsable(name, 'YAML', mark.line + 1 if mark else None,
                                              mark.column + 1 if mark else None, problem))
        if self.data is None:
            self.data = {}
        if not isinstance(self.data, dict):
            raise ServingLinkError('%s does not hold a YAML mapping at the top; refusing to edit it' % name)
        self.expected = copy.deepcopy(self.data)

    # ---------------------------------------------------------------- locating
    def _lines(self):
        return _line_spans(self.text)

    def _block_keys(self, lines, first, last, key, indent=None):
        """Line indexes in lines[first:last] of ``key`` at the mapping's own indent."""
        text = self.text
        hits = []
        mapping_indent = indent
        for index in range(first, last):
            start, end, dummy = lines[index]
            if index == 0 and text.startswith('\ufeff'):
                start += 1      # a byte order mark is not part of the first key
            content = text[start:end]
            stripped = content.lstrip(' ')
            if not stripped or stripped.startswith('#'):
                continue
            if first == 0 and mapping_indent is None and (content.startswith('---') or content.startswith('%')):
                continue
            col = len(content) - len(stripped)
            if mapping_indent is None:
                mapping_indent = col
            if col != mapping_indent:
                continue
            match = _KEY_RE.match(stripped)
            if match and _unquote_key(match.group('key')) == key:
                hits.append((index, col, start + col + match.end()))
        return hits, mapping_indent

    def _value_node(self, lines, index, indent, colon):
        """The node of the value of the block key on line ``index`` (colon: offset after ':')."""
        text = self.text
        start, end, dummy = lines[index]
        rest_start = colon
        while rest_start < end and text[rest_start] in ' \t':
            rest_start += 1
        rest = text[rest_start:end]
        if rest and rest[0] in '[{':
            flow_end = _scan_flow(text, rest_start)
            after = text[flow_end:]
            nl = after.find('\n')
            tail = after if nl < 0 else after[:nl]
            if tail.strip() and not tail.strip().startswith('#'):
                raise ServingLinkError('unexpected text after a flow collection')
            return _Node('flow', rest_start, flow_end, colon=colon, indent=indent, line_end=end)
        comment = _comment_start(text[colon:end])
        value_end = end if comment is None else colon + comment
        while value_end > rest_start and text[value_end - 1] in ' \t':
            value_end -= 1
        if rest_start < value_end and text[rest_start] in '|>':
            raise ServingLinkError('block scalars are not edited in place')
        if rest_start < value_end:
            if text[rest_start] in '&*!':
                raise ServingLinkError('anchors, aliases and tags are not edited in place')
            return _Node('scalar', rest_start, value_end, colon=colon, indent=indent, line_end=end)
        # block body: more indented lines, or "- " items at the key's own indent (compact sequence)
        last_content = None
        compact = None
        for j in range(index + 1, len(lines)):
            s, e, dummy = lines[j]
            content = text[s:e]
            stripped = content.lstrip(' ')
            if not stripped or stripped.startswith('#'):
                continue
            col = len(content) - len(stripped)
            if compact is None:
                compact = col == indent and (stripped == '-' or stripped.startswith('- '))
            if col > indent or (compact and col == indent and (stripped == '-' or stripped.startswith('- '))):
                last_content = j
                continue
            break
        if last_content is None:
            return _Node('empty', value_end, value_end, colon=colon, indent=indent, line_end=end)
        return _Node('block', lines[index + 1][0], lines[last_content][2], colon=colon, indent=indent, line_end=end)

    def _find(self, path):
        """(node, None) for an existing path, or (None, (parent node or None, missing key index))."""
        lines = self._lines()
        first, last, indent = 0, len(lines), None
        node = None
        for depth, key in enumerate(path):
            if node is not None and node.kind == 'flow':
                return self._find_in_flow(node, path, depth)
            if node is not None and node.kind != 'block':
                return None, (node, depth)
            hits, mapping_indent = self._block_keys(lines, first, last, key, indent)
            if len(hits) > 1:
                raise ServingLinkError('%s has the key %s more than once' % (self.name, '.'.join(path[:depth + 1])))
            if not hits:
                return None, (node, depth)
            index, col, colon = hits[0]
            node = self._value_node(lines, index, col, colon)
            if node.kind == 'block':
                first = index + 1
                last = first
                while last < len(lines) and lines[last][0] < node.end:
                    last += 1
                indent = None
        return node, None

    def _find_in_flow(self, node, path, depth):
        for key in path[depth:]:
            if node.kind != 'flow' or self.text[node.start] != '{':
                return None, (node, depth)
            found = [item for item in _flow_items(self.text, node.start, node.end) if item[2] == key]
            if len(found) > 1:
                raise ServingLinkError('%s has the key %s more than once' % (self.name, '.'.join(path[:depth + 1])))
            if not found:
                return None, (node, depth)
            item = found[0]
            value_start, value_end = item[4], item[5]
            if value_start >= value_end:
                kind = 'empty'
            elif self.text[value_start] in '[{':
                kind = 'flow'
                value_end = _scan_flow(self.text, value_start)
            else:
                kind = 'scalar'
            node = _Node(kind, value_start, value_end, flow=True)
            depth += 1
        return node, None

    # ---------------------------------------------------------------- rendering
    def _scalar(self, value, flow, old=None):
        if isinstance(value, bool):
            return 'true' if value else 'false'
        if value is None:
            return 'null'
        text = str(value)
        if old and old[0] == "'" and "\n" not in text:
            return "'%s'" % text.replace("'", "''")
        if old and old[0] == '"':
            return json.dumps(text)
        if _plain_ok(text):
            return text
        return json.dumps(text)

    def _flow(self, value):
        if isinstance(value, list):
            return '[%s]' % ', '.join(self._flow(item) for item in value)
        if isinstance(value, dict):
            return '{%s}' % ', '.join('%s: %s' % (self._scalar(k, True), self._flow(v)) for k, v in value.items())
        return self._scalar(value, True)

    def _block_lines(self, value, indent):
        """Lines (no trailing newline) of ``value`` as the block body of a key at ``indent``."""
        pad = ' ' * (indent + 2)
        lines = []
        if isinstance(value, list):
            for item in value:
                lines.append('%s- %s' % (pad, self._flow(item)))
        else:
            for key, item in value.items():
                lines.extend(self._key_lines(key, item, indent + 2))
        return lines

    def _key_lines(self, key, value, indent):
        pad = ' ' * indent
        if isinstance(value, (list, dict)) and value:
            return ['%s%s:' % (pad, self._scalar(key, False))] + self._block_lines(value, indent)
        return ['%s%s: %s' % (pad, self._scalar(key, False), self._flow(value))]

    # ---------------------------------------------------------------- editing
    def _replace(self, start, end, new):
        self.text = self.text[:start] + new + self.text[end:]

    def set(self, path, value):
        """Set a key path to ``value`` (bool, str, list of str or dict) by a targeted text edit."""
        node, missing = self._find(path)
        nl = self.newline
        if node is not None:
            if node.flow:
                self._replace(node.start, node.end, self._flow(value))
            elif isinstance(value, list) and node.kind == 'block' and self._is_block_sequence(node) and value:
                item_indent = self._first_item_indent(node)
                body = ''.join('%s- %s%s' % (' ' * item_indent, self._flow(item), nl) for item in value)
                first_item = self._first_content_line_start(node)
                self._replace(first_item, node.end, body)
            elif isinstance(value, (list, dict)) and node.kind in ('block', 'empty') and value:
                body = ''.join(nl + line for line in self._block_lines(value, node.indent))
                if node.kind == 'block':
                    # keep the key line (and its comment); replace the whole body
                    self._replace(node.line_end, node.end, body + nl)
                else:
                    self._replace(node.line_end, node.line_end, body)
            elif node.kind == 'block':
                # a collection that becomes a scalar or an empty collection: inline on the key line
                new = ' ' + self._flow(value)
                self._replace(node.line_end, node.end, nl)
                self._insert_inline(node, new)
            elif node.kind == 'empty':
                self._insert_inline(node, ' ' + self._flow(value))
            elif node.kind == 'scalar' and not isinstance(value, (list, dict)):
                self._replace(node.start, node.end, self._scalar(value, False, self.text[node.start:node.end]))
            else:   # scalar or flow value replaced by a flow rendering
                self._replace(node.start, node.end, self._flow(value))
        else:
            parent, depth = missing
            if get_path(self.expected, path[:depth + 1])[0]:
                # the data has the key but the text search did not find it (unusual syntax): adding it
                # would make a second one
                raise ServingLinkError('%s: cannot locate %s in the text (unusual YAML syntax); edit it by hand'
                                       % (self.name, '.'.join(path[:depth + 1])))
            self._insert(path, depth, parent, value)
        self.expected = set_path(self.expected, path, value)

    def _insert_inline(self, node, new):
        self._replace(node.colon, node.colon, new)

    def _is_block_sequence(self, node):
        stripped = self.text[self._first_content_line_start(node):node.end].lstrip(' ')
        return stripped.startswith('- ') or stripped.startswith('-\n') or stripped.startswith('-\r')

    def _first_content_line_start(self, node):
        for start, end, dummy in _line_spans(self.text[node.start:node.end]):
            content = self.text[node.start + start:node.start + end].lstrip(' ')
            if content and not content.startswith('#'):
                return node.start + start
        return node.start

    def _first_item_indent(self, node):
        start = self._first_content_line_start(node)
        line = self.text[start:self.text.find('\n', start) if '\n' in self.text[start:] else len(self.text)]
        return len(line) - len(line.lstrip(' '))

    def _insert(self, path, depth, parent, value):
        """Add path[depth] (with the rest of the path below it) to ``parent`` (None: the top level)."""
        nl = self.newline
        key = path[depth]
        nested = value
        for inner in reversed(path[depth + 1:]):
            nested = {inner: nested}
        if parent is not None and parent.flow or parent is not None and parent.kind == 'flow':
            if self.text[parent.start] != '{':
                raise ServingLinkError('%s: %s is not a mapping' % (self.name, '.'.join(path[:depth])))
            items = _flow_items(self.text, parent.start, parent.end)
            entry = '%s: %s' % (self._scalar(key, True), self._flow(nested))
            if items:
                self._replace(items[-1][1], items[-1][1], ', ' + entry)
            else:
                self._replace(parent.start + 1, parent.end - 1, entry)
            return
        if parent is not None and parent.kind == 'scalar':
            raise ServingLinkError('%s: %s is not a mapping' % (self.name, '.'.join(path[:depth])))
        if parent is not None and parent.kind == 'empty':
            body = ''.join(nl + line for line in self._key_lines(key, nested, parent.indent + 2))
            self._replace(parent.line_end, parent.line_end, body)
            return
        if parent is not None:      # block mapping: after its last content line, at its indent
            if self._is_block_sequence(parent):
                raise ServingLinkError('%s: %s is not a mapping' % (self.name, '.'.join(path[:depth])))
            indent = self._first_item_indent(parent)
            body = ''.join(line + nl for line in self._key_lines(key, nested, indent))
            end = parent.end
            if not self.text[:end].endswith('\n'):
                body = nl + body
            self._replace(end, end, body)
            return
        # top level: after the last content line of the document
        lines = self._lines()
        insert_at = 0
        for start, end, full in lines:
            content = self.text[start:end].strip()
            if content and not content.startswith('#') and content not in ('...',):
                insert_at = full
        body = ''.join(line + nl for line in self._key_lines(key, nested, 0))
        if insert_at and not self.text[:insert_at].endswith('\n'):
            body = nl + body
        self._replace(insert_at, insert_at, body)

    # ---------------------------------------------------------------- checking
    def validate(self):
        """Refuse unless the edited text parses to the original data with only the owned keys changed."""
        try:
            parsed = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            raise ServingLinkError('the edit of %s would not be valid YAML (%s); nothing was written'
                                   % (self.name, _one_line(exc)))
        if (parsed or {}) != self.expected:
            raise ServingLinkError('an in-place edit of %s would change more than the serving link keys; nothing '
                                   'was written (edit this file by hand)' % self.name)

    def get(self, path):
        return get_path(self.data, path)

    def masked(self, text, paths, mask=MASK):
        """``text`` (a version of this file) with the values at ``paths`` replaced by ``mask``."""
        doc = YamlDocument.__new__(YamlDocument)
        doc.text, doc.name, doc.newline = text, self.name, _newline_of(text)
        for path in paths:
            try:
                node, missing = doc._find(path)
            except ServingLinkError:
                node = None
            if node is not None and node.kind in ('scalar', 'flow') and node.end > node.start:
                doc._replace(node.start, node.end, mask)
        return doc.text


def _plain_ok(text):
    """A string that YAML reads back as the same string, plain, in block and in flow context."""
    if not text or text != text.strip() or _FLOW_PLAIN_BAD.intersection(text) or '\n' in text:
        return False
    try:
        return yaml.safe_load('k: %s' % text) == {'k': text} and yaml.safe_load('[%s]' % text) == [text]
    except yaml.YAMLError:
        return False


def unparsable(name, kind, line, column, problem):
    """The refusal for a config file that does not parse: the file, where, why, and what to do."""
    where = 'line %d, column %d: ' % (line, column) if line and column else ('line %d: ' % line if line else '')
    return ('%s is not valid %s (%s%s); refusing to edit it, nothing was written. FATE Flow cannot read this file '
            'either: fix it by hand (or put back a known good copy, e.g. a backup %s.*~ left by an earlier run), '
            'then run again.' % (name, kind, where, ' '.join(str(problem).split()), name))


def _one_line(exc):
    return ' '.join(str(exc).split())


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------

class _JsonParser(object):
    """A JSON parser that records where every value sits: ('object', start, end, [(key, value)]),
    ('array', start, end, [values]) or ('scalar', start, end, None)."""

    _NUMBER = re.compile(r'-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?')

    def __init__(self, text):
        self.text = text

    def parse(self):
        pos = self._ws(0)
        node, pos = self._value(pos)
        if self._ws(pos) != len(self.text):
            raise ValueError('extra data at offset %d' % pos)
        return node

    def _ws(self, pos):
        while pos < len(self.text) and self.text[pos] in ' \t\r\n':
            pos += 1
        return pos

    def _value(self, pos):
        text = self.text
        if pos >= len(text):
            raise ValueError('unexpected end')
        char = text[pos]
        if char == '{':
            members = []
            start = pos
            pos = self._ws(pos + 1)
            if text[pos:pos + 1] == '}':
                return ('object', start, pos + 1, members), pos + 1
            while True:
                key_node, pos = self._string(pos)
                pos = self._ws(pos)
                if text[pos:pos + 1] != ':':
                    raise ValueError('expected ":" at offset %d' % pos)
                value, pos = self._value(self._ws(pos + 1))
                members.append((json.loads(text[key_node[1]:key_node[2]]), key_node, value))
                pos = self._ws(pos)
                if text[pos:pos + 1] == ',':
                    pos = self._ws(pos + 1)
                    continue
                if text[pos:pos + 1] == '}':
                    return ('object', start, pos + 1, members), pos + 1
                raise ValueError('expected "," or "}" at offset %d' % pos)
        if char == '[':
            start = pos
            items = []
            pos = self._ws(pos + 1)
            if text[pos:pos + 1] == ']':
                return ('array', start, pos + 1, items), pos + 1
            while True:
                value, pos = self._value(pos)
                items.append(value)
                pos = self._ws(pos)
                if text[pos:pos + 1] == ',':
                    pos = self._ws(pos + 1)
                    continue
                if text[pos:pos + 1] == ']':
                    return ('array', start, pos + 1, items), pos + 1
                raise ValueError('expected "," or "]" at offset %d' % pos)
        if char == '"':
            return self._string(pos)
        for literal in ('true', 'false', 'null'):
            if text.startswith(literal, pos):
                return ('scalar', pos, pos + len(literal), None), pos + len(literal)
        match = self._NUMBER.match(text, pos)
        if match and match.end() > pos:
            return ('scalar', pos, match.end(), None), match.end()
        raise ValueError('unexpected character at offset %d' % pos)

    def _string(self, pos):
        if self.text[pos:pos + 1] != '"':
            raise ValueError('expected a string at offset %d' % pos)
        end = _scan_quoted(self.text, pos)
        return ('scalar', pos, end, None), end


class JsonDocument(object):
    """A JSON file's text with targeted edits of key paths (objects only)."""

    def __init__(self, text, name='file'):
        self.text = text
        self.name = name
        self.newline = _newline_of(text)
        try:
            self.data = json.loads(text)
        except ValueError as exc:
            raise ServingLinkError(unparsable(name, 'JSON', getattr(exc, 'lineno', None), getattr(exc, 'colno', None),
                                              getattr(exc, 'msg', None) or str(exc)))
        if not isinstance(self.data, dict):
            raise ServingLinkError('%s does not hold a JSON object at the top; refusing to edit it' % name)
        self.expected = copy.deepcopy(self.data)

    def _tree(self):
        try:
            return _JsonParser(self.text).parse()
        except (ValueError, ServingLinkError) as exc:
            raise ServingLinkError('cannot locate keys in %s: %s' % (self.name, exc))

    def _line_indent(self, offset):
        line_start = self.text.rfind('\n', 0, offset) + 1
        line = self.text[line_start:offset]
        return line[:len(line) - len(line.lstrip(' \t'))]

    def _render(self, value, multiline, indent, unit):
        if isinstance(value, list) and value and multiline:
            nl = self.newline
            inner = indent + unit
            return '[' + nl + (',' + nl).join(inner + json.dumps(item) for item in value) + nl + indent + ']'
        if isinstance(value, dict) and value and multiline:
            nl = self.newline
            inner = indent + unit
            return '{' + nl + (',' + nl).join(
                inner + json.dumps(key) + ': ' + self._render(item, multiline, inner, unit)
                for key, item in value.items()) + nl + indent + '}'
        return json.dumps(value, separators=(', ', ': '))

    def _unit(self):
        match = re.search(r'\n([ \t]+)"', self.text)
        return match.group(1) if match else '    '

    def set(self, path, value):
        node = self._tree()
        for depth, key in enumerate(path):
            if node[0] != 'object':
                raise ServingLinkError('%s: %s is not an object' % (self.name, '.'.join(path[:depth]) or 'the top'))
            found = [member for member in node[3] if member[0] == key]
            if len(found) > 1:
                raise ServingLinkError('%s has the key %s more than once' % (self.name, '.'.join(path[:depth + 1])))
            if not found:
                nested = value
                for inner in reversed(path[depth + 1:]):
                    nested = {inner: nested}
                self._add_member(node, key, nested)
                break
            node = found[0][2]
            if depth == len(path) - 1:
                start, end = node[1], node[2]
                multiline = '\n' in self.text[start:end] or (
                    node[0] in ('array', 'object') and not node[3] and '\n' in self.text[:start])
                key_indent = self._line_indent(found[0][1][1])
                self.text = self.text[:start] + self._render(value, multiline, key_indent, self._unit()) + self.text[end:]
        self.expected = set_path(self.expected, path, value)

    def _add_member(self, obj, key, value):
        unit = self._unit()
        multiline = '\n' in self.text[obj[1]:obj[2]]
        if obj[3]:
            last_key = obj[3][-1][1]
            last_value = obj[3][-1][2]
            indent = self._line_indent(last_key[1]) if multiline else ''
            sep = ',' + self.newline + indent if multiline else ', '
            entry = sep + json.dumps(key) + ': ' + self._render(value, multiline, indent, unit)
            self.text = self.text[:last_value[2]] + entry + self.text[last_value[2]:]
        else:
            entry = json.dumps(key) + ': ' + json.dumps(value)
            self.text = self.text[:obj[1] + 1] + entry + self.text[obj[2] - 1:]

    def validate(self):
        try:
            parsed = json.loads(self.text)
        except ValueError as exc:
            raise ServingLinkError('the edit of %s would not be valid JSON (%s); nothing was written' % (self.name, exc))
        if parsed != self.expected:
            raise ServingLinkError('an in-place edit of %s would change more than the serving link keys; nothing '
                                   'was written (edit this file by hand)' % self.name)

    def get(self, path):
        return get_path(self.data, path)

    def masked(self, text, paths, mask=MASK):
        return text


# ------------------------------------------------------------------------------------------------
# The whole operation, without Ansible
# ------------------------------------------------------------------------------------------------

PASSWORD_PATH = ('zookeeper', 'password')


def prepare(fate_home, mode, servings=None, zookeeper=None, fate_version=None, read=None):
    """Everything the module needs to know, without writing anything.

    Returns a dict: layout, version (tuple or None), detected_by, files ({rel: {path, kind, before,
    after, changes}}), warnings. ``read`` (path -> bytes) is for tests.
    """
    read = read or _read_bytes
    layout_name, version, detected_by = detect_layout(fate_home, fate_version)
    layout = LAYOUTS[layout_name]
    warnings = []
    docs = {}
    files = {}
    for rel, kind in sorted(layout['files'].items()):
        path = os.path.join(fate_home, rel)
        if not os.path.isfile(path):
            raise ServingLinkError('%s not found: FATE %s keeps the serving link in %s'
                                   % (path, layout['versions'], ', '.join(sorted(layout['files']))))
        if kind == 'yaml' and not HAS_YAML:
            raise ServingLinkError('PyYAML is needed to edit %s' % path)
        text = decode(read(path), path)
        docs[rel] = document_for(kind, text, path)
        files[rel] = {'path': path, 'kind': kind, 'before': text, 'after': text, 'changes': []}
    changes = plan_changes(layout_name, dict((rel, doc.data) for rel, doc in docs.items()), mode,
                           servings=servings, zookeeper=zookeeper, version=version)
    for rel, items in sorted(changes.items()):
        doc = docs[rel]
        for path, value in items:
            doc.set(path, value)
        doc.validate()
        files[rel]['after'] = doc.text
        files[rel]['changes'] = ['.'.join(path) for path, dummy in items]
    override = layout['override']
    if override and (version is None or version[:2] >= (1, 7)):
        override_path = os.path.join(fate_home, override)
        if os.path.isfile(override_path) and HAS_YAML:
            try:
                local = yaml.safe_load(decode(read(override_path), override_path)) or {}
            except (yaml.YAMLError, ServingLinkError):
                local = {}
            shadowed = sorted(k for k in ('servings', 'use_registry', 'zookeeper') if isinstance(local, dict) and k in local)
            if shadowed:
                warnings.append('%s sets %s, which FATE Flow 1.7+ reads on top of service_conf.yaml: this change may '
                                'not take effect' % (override_path, ', '.join(shadowed)))
    return {'layout': layout_name, 'version': version, 'detected_by': detected_by, 'files': files,
            'docs': docs, 'warnings': warnings}


_SECRET_KEY_RE = re.compile(r'(?i)(passw|secret|token|private_key|access_key)')


def secret_paths(data, prefix=()):
    """Paths of every value in a parsed config whose key names a secret (the ZooKeeper password, FATE Flow's
    http_secret_key, the database passwd, ...): the diff masks them all."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = prefix + (str(key),)
            if isinstance(value, dict):
                found += secret_paths(value, path)
            elif isinstance(value, list):
                continue
            elif _SECRET_KEY_RE.search(str(key)) and value not in (None, ''):
                found.append(path)
    return found


def diff_for(prepared):
    """Diff entries (before/after per changed file) with every secret masked (the ZooKeeper password shows as
    changed when it changes)."""
    diffs = []
    for rel, info in sorted(prepared['files'].items()):
        if info['before'] == info['after']:
            continue
        doc = prepared['docs'][rel]
        # a changed password shows as a changed mask, never as text
        after_mask = MASK + ' (changed)' if '.'.join(PASSWORD_PATH) in info['changes'] else MASK
        others = [p for p in secret_paths(doc.data) if p != PASSWORD_PATH]
        before_doc = document_for(info['kind'], info['before'], info['path'])
        before_paths = [PASSWORD_PATH] + [p for p in secret_paths(before_doc.data) if p != PASSWORD_PATH]
        after = doc.masked(info['after'], [PASSWORD_PATH], after_mask)
        diffs.append({
            'before_header': info['path'],
            'after_header': info['path'],
            'before': doc.masked(info['before'], before_paths),
            'after': doc.masked(after, others),
        })
    return diffs


def _read_bytes(path):
    with open(path, 'rb') as handle:
        return handle.read()
