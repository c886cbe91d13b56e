# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""FATE model naming, role maps and model archives.

PRIVATE to the fate.flow collection: this file is not a public API and may change
in any release without notice. Only the collection's own modules may import it.

Everything here is pure Python from the standard library, so it can be unit tested
without a FATE Flow and imported on any host.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile

PIPELINE_ENTRY = 'variables/data/pipeline/pipeline/Pipeline'
DEFINE_META_ENTRY = 'define/define_meta.yaml'
# A Pipeline message is a few KiB to a few MiB (it holds the DSLs and runtime confs).
MAX_PIPELINE_BYTES = 64 * 1024 * 1024
KNOWN_ROLES = ('arbiter', 'guest', 'host')

_ARCHIVE_PATH_RE = re.compile(r"Model files can be found at '([^']+)'")
_INT_RE = re.compile(r'^[+-]?\d{1,18}$')
_CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')
# FATE Flow makes file and directory names of model ids and versions (model_local_cache/<role>#<party>#<model id>/
# <version>, temp/<role>#<party>#<model id>_<version>.zip); one name may hold at most 255 bytes on Linux.
MAX_NAME_BYTES = 255


class ModelSpecError(ValueError):
    """A role map, party id or archive given by the user is not usable."""


# ---------------------------------------------------------------------------
# Names FATE derives from a role map
# ---------------------------------------------------------------------------

def gen_model_id(roles):
    """The model id FATE Flow derives from a role map.

    Role names are sorted; each becomes ``<role>-<ids>`` where ids are the party ids
    of that role, de-duplicated, sorted and joined with ``_``; the parts are joined with
    ``#`` and ``#model`` is appended. An empty map gives ``all#model``.
    Ids are sorted as given, so pass ints (as the migrate API needs) for numeric order.
    """
    if not roles:
        return 'all#model'
    parts = []
    for role in sorted(roles):
        ids = sorted(set(roles[role]))
        parts.append('%s-%s' % (role, '_'.join(str(pid) for pid in ids)))
    return '#'.join(parts) + '#model'


def party_model_id(role, party_id, model_id):
    """``<role>#<party_id>#<model_id>``: the name of one party's copy of a model."""
    return '%s#%s#%s' % (role, party_id, model_id)


def archive_name(role, party_id, model_id, model_version):
    """File name of the archive FATE Flow writes for one party's model."""
    return '%s_%s.zip' % (party_model_id(role, party_id, model_id), model_version)


def parse_archive_path(retmsg):
    """The archive path that a successful ``/migrate/do`` reports in its retmsg, or None."""
    if not retmsg:
        return None
    match = _ARCHIVE_PATH_RE.search(str(retmsg))
    return match.group(1) if match else None


# ---------------------------------------------------------------------------
# Party ids and role maps
# ---------------------------------------------------------------------------

def _shown(value, limit=60):
    """repr of a user value, shortened: error messages stay readable with very long input."""
    text = repr(value)
    return text if len(text) <= limit else '%s...(%d characters)' % (text[:limit], len(text))


def to_int_party_id(value, where='party id'):
    """An int party id from an int or an int-like string (at most 18 digits); raises ModelSpecError otherwise."""
    if isinstance(value, bool):
        raise ModelSpecError('%s %s is not an integer party id' % (where, _shown(value)))
    if isinstance(value, int) and abs(value) < 10 ** 18:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 10 ** 18:
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    too_long = isinstance(value, (int, float, str)) and re.match(r'^[+-]?\d+$', str(value).strip())
    raise ModelSpecError('%s %s is not an integer party id%s' % (where, _shown(value),
                                                                 ' (at most 18 digits)' if too_long else ''))


def check_name(value, option, required=True):
    """Check a model id, model version or service id that FATE turns into file names; returns it.

    Refused: empty text, leading or trailing whitespace, '/' or '\\', '.' and '..', control characters
    (newlines, tabs) and more than 255 bytes. Everything else (spaces, '#', quotes, ';', '$') is passed
    on literally: FATE Flow accepts it, and no shell ever sees it.
    """
    if value is None:
        if required:
            raise ModelSpecError('%s is required' % option)
        return None
    if not isinstance(value, str):
        raise ModelSpecError('%s must be text, got %s' % (option, type(value).__name__))
    problem = None
    if not value.strip():
        problem = 'is empty'
    elif value != value.strip():
        problem = 'has leading or trailing whitespace'
    elif '/' in value or '\\' in value:
        problem = "contains '/' or '\\', which would make FATE Flow write outside its model directories"
    elif value in ('.', '..'):
        problem = 'is a relative directory name'
    elif _CONTROL_RE.search(value):
        problem = 'contains a control character (newline, tab, ...)'
    elif len(value.encode('utf-8')) > MAX_NAME_BYTES:
        problem = 'is %d bytes long; FATE Flow stores it in file names of at most %d bytes' % (
            len(value.encode('utf-8')), MAX_NAME_BYTES)
    if problem:
        raise ModelSpecError('%s %s %s' % (option, _shown(value), problem))
    return value


def check_model_names(params, *options, **kwargs):
    """check_name() on each option of a module's params that is set (all required unless required=False)."""
    for option in options:
        check_name(params.get(option), option, required=kwargs.get('required', True))


def check_file_name(name, what):
    """A file name FATE Flow will write (an archive, a model directory) must fit in 255 bytes."""
    if len(name.encode('utf-8')) > MAX_NAME_BYTES:
        raise ModelSpecError('%s %s is %d bytes long, more than the %d a file name may have: use a shorter model id '
                             'or version' % (what, _shown(name), len(name.encode('utf-8')), MAX_NAME_BYTES))
    return name


def to_str_party_id(value, where='party id'):
    """The text form of a party id, as FATE-Serving and multipart forms need it."""
    return str(to_int_party_id(value, where))


def normalize_role_map(roles, name, int_ids=True):
    """Check a ``{role: [party ids]}`` map and return a copy with int (or str) ids.

    Role names must be FATE's (guest, host, arbiter); each value must be a non-empty
    list of party ids without duplicates.
    """
    if not isinstance(roles, dict) or not roles:
        raise ModelSpecError('%s must be a non-empty mapping of role to a list of party ids' % name)
    convert = to_int_party_id if int_ids else to_str_party_id
    result = {}
    for role, ids in roles.items():
        if role not in KNOWN_ROLES:
            raise ModelSpecError('%s has an unknown role %r; FATE roles are %s' % (name, role, ', '.join(KNOWN_ROLES)))
        if isinstance(ids, (str, int)) and not isinstance(ids, bool):
            ids = [ids]
        if not isinstance(ids, (list, tuple)) or not ids:
            raise ModelSpecError('%s.%s must be a non-empty list of party ids' % (name, role))
        converted = [convert(pid, '%s.%s' % (name, role)) for pid in ids]
        if len(set(converted)) != len(converted):
            raise ModelSpecError('%s.%s lists the same party id twice: %s' % (name, role, converted))
        result[role] = converted
    return result


def normalize_party(party, name, roles=None, int_ids=True):
    """Check a ``{role, party_id}`` mapping (an initiator); optionally that it is in ``roles``."""
    if not isinstance(party, dict) or not party.get('role') or party.get('party_id') in (None, ''):
        raise ModelSpecError('%s must be a mapping with role and party_id' % name)
    role = party['role']
    convert = to_int_party_id if int_ids else to_str_party_id
    pid = convert(party['party_id'], '%s.party_id' % name)
    if roles is not None and (role not in roles or pid not in roles[role]):
        raise ModelSpecError('%s %s %s is not one of the parties %s' % (name, role, pid, roles))
    return {'role': role, 'party_id': pid}


def roles_equal(left, right):
    """True when both role maps name the same parties per role (ids compared as text, as FATE does)."""
    if set(left) != set(right):
        return False
    return all(set(str(p) for p in left[r]) == set(str(p) for p in right[r]) for r in left)


def validate_migrate_roles(role, migrate_role, execute_party=None, migrate_initiator=None):
    """Check the maps of a migration the way FATE Flow would, before anything is sent.

    Returns ``(role, migrate_role, execute_party, migrate_initiator, mapping)`` with int
    party ids, where ``mapping[(role, old_id)] = new_id`` (FATE maps by position).
    ``execute_party`` defaults to every original party; ``migrate_initiator`` defaults to
    the first new guest.
    """
    role = normalize_role_map(role, 'role')
    migrate_role = normalize_role_map(migrate_role, 'migrate_role')
    if set(role) != set(migrate_role):
        raise ModelSpecError(
            'role and migrate_role must have the same roles (got %s and %s): FATE maps the parties '
            'role by role, by position' % (sorted(role), sorted(migrate_role)))
    for name in role:
        if len(role[name]) != len(migrate_role[name]):
            raise ModelSpecError(
                'role.%s and migrate_role.%s must list the same number of parties (%d and %d): FATE maps '
                'them by position' % (name, name, len(role[name]), len(migrate_role[name])))
    for required in ('guest', 'host'):
        if required not in role:
            raise ModelSpecError(
                'role and migrate_role must both include %s: FATE\'s model converters read the guest and '
                'host parties' % required)
    if roles_equal(role, migrate_role):
        raise ModelSpecError(
            'role and migrate_role name the same parties: there is no need to migrate this model')

    if execute_party:
        execute_party = normalize_role_map(execute_party, 'execute_party')
        for name, ids in execute_party.items():
            if name not in role:
                raise ModelSpecError('execute_party.%s is not a role of the model (role has %s)' % (name, sorted(role)))
            unknown = [pid for pid in ids if pid not in role[name]]
            if unknown:
                raise ModelSpecError(
                    'execute_party.%s lists %s, which are not original %s parties %s; execute_party names '
                    'the original (old) party ids' % (name, unknown, name, role[name]))
    else:
        execute_party = dict((name, list(ids)) for name, ids in role.items())

    if migrate_initiator:
        migrate_initiator = normalize_party(migrate_initiator, 'migrate_initiator', migrate_role)
    else:
        migrate_initiator = {'role': 'guest', 'party_id': migrate_role['guest'][0]}

    mapping = {}
    for name, ids in role.items():
        for index, old in enumerate(ids):
            mapping[(name, old)] = migrate_role[name][index]
    return role, migrate_role, execute_party, migrate_initiator, mapping


def iter_parties(roles, skip_roles=()):
    """``(role, party_id)`` pairs of a role map in a stable order (roles sorted)."""
    for name in sorted(roles):
        if name in skip_roles:
            continue
        for pid in roles[name]:
            yield name, pid


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def file_digests(path, algorithms=('sha256',), chunk_size=1024 * 1024):
    """Hex digests of a file, read in chunks (memory does not grow with the file)."""
    hashes = dict((name, hashlib.new(name)) for name in algorithms)
    with open(path, 'rb') as handle:
        while True:
            block = handle.read(chunk_size)
            if not block:
                break
            for digest in hashes.values():
                digest.update(block)
    return dict((name, digest.hexdigest()) for name, digest in hashes.items())


def read_sha1_sidecar(archive_path):
    """The hex digest in ``<archive>.sha1`` (FATE 1.5.2 to 1.8 write it), or None."""
    sidecar = archive_path + '.sha1'
    try:
        with open(sidecar, 'r') as handle:
            value = handle.read(256).strip().split()
    except (IOError, OSError):
        return None
    if value and re.match(r'^[0-9a-fA-F]{40}$', value[0]):
        return value[0].lower()
    return None


def archive_facts(path):
    """sha256 (and the ``.sha1`` sidecar check) of an archive readable here, or None when absent."""
    if not path or not os.path.isfile(path):
        return None
    sidecar = read_sha1_sidecar(path)
    digests = file_digests(path, ('sha256', 'sha1') if sidecar else ('sha256',))
    facts = {'archive_path': path, 'archive_size': os.path.getsize(path), 'archive_sha256': digests['sha256'],
             'archive_sha1': sidecar}
    if sidecar:
        facts['archive_sha1_matches'] = digests['sha1'] == sidecar
    return facts


# ---------------------------------------------------------------------------
# Pipeline protobuf (com.webank.ai.fate.core.mlmodel.buffer.Pipeline), read without protobuf
# ---------------------------------------------------------------------------

# field number: (name, kind); kind is 'json' (bytes holding JSON), 'str', 'bool' or 'int'.
PIPELINE_FIELDS = {
    1: ('inference_dsl', 'json'),
    2: ('train_dsl', 'json'),
    3: ('train_runtime_conf', 'json'),
    4: ('fate_version', 'str'),
    5: ('model_id', 'str'),
    6: ('model_version', 'str'),
    7: ('parent', 'bool'),
    8: ('loaded_times', 'int'),
    9: ('roles', 'json'),
    10: ('work_mode', 'int'),
    11: ('initiator_role', 'str'),
    12: ('initiator_party_id', 'int'),
    13: ('runtime_conf_on_party', 'json'),
    14: ('parent_info', 'json'),
}


class WireError(ValueError):
    """Bytes that are not a valid protobuf message."""


def _read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise WireError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError('varint too long')


def decode_fields(buf):
    """Decode a protobuf message into ``[(field_number, wire_type, value)]``.

    Varints are ints, length-delimited fields are bytes, fixed fields are raw bytes.
    Groups (wire types 3 and 4) are not used by FATE's messages and are rejected.
    """
    buf = bytes(buf)
    pos = 0
    fields = []
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 0x07
        if number == 0:
            raise WireError('field number 0')
        if wire_type == 0:
            value, pos = _read_varint(buf, pos)
        elif wire_type == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire_type == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise WireError('unsupported wire type %d' % wire_type)
        if pos > len(buf):
            raise WireError('truncated field %d' % number)
        fields.append((number, wire_type, value))
    return fields


def _json_or_text(raw):
    text = raw.decode('utf-8', 'replace')
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def decode_pipeline(buf):
    """The Pipeline message of a FATE model as a dict; byte fields holding JSON are decoded."""
    out = {}
    for number, wire_type, value in decode_fields(buf):
        if number not in PIPELINE_FIELDS:
            continue
        name, kind = PIPELINE_FIELDS[number]
        if kind in ('json', 'str'):
            if wire_type != 2:
                raise WireError('field %s has wire type %d, expected 2' % (name, wire_type))
            out[name] = _json_or_text(value) if kind == 'json' else value.decode('utf-8', 'replace')
        else:
            if wire_type != 0:
                raise WireError('field %s has wire type %d, expected 0' % (name, wire_type))
            if kind == 'bool':
                out[name] = bool(value)
            else:
                out[name] = value - (1 << 64) if value >= (1 << 63) else value
    return out


def pipeline_roles(pipeline):
    """The role map of a model: the train runtime conf's, else the Pipeline's roles field.

    Migration rewrites ``train_runtime_conf.role`` in every FATE 1.x, but not always
    ``roles``, so the conf is the one to trust.
    """
    conf = pipeline.get('train_runtime_conf')
    if isinstance(conf, dict) and isinstance(conf.get('role'), dict) and conf['role']:
        return conf['role']
    roles = pipeline.get('roles')
    return roles if isinstance(roles, dict) else {}


def party_in_roles(roles, role, party_id):
    """True when ``party_id`` (compared as text) is a ``role`` party of the role map."""
    ids = roles.get(role) or []
    if not isinstance(ids, (list, tuple)):
        ids = [ids]
    return str(party_id) in [str(pid) for pid in ids]


# ---------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------

def _unsafe_entry(name):
    normalized = name.replace('\\', '/')
    if normalized.startswith('/') or re.match(r'^[A-Za-z]:', normalized):
        return 'is an absolute path'
    if '..' in normalized.split('/'):
        return "contains '..'"
    return None


def inspect_archive(path, role=None, party_id=None):
    """Check a model archive before it is uploaded and describe the model inside.

    Raises ModelSpecError when the file is missing, not a zip, has an entry with an
    absolute path or '..', lacks the Pipeline or define_meta.yaml, or (when role and
    party_id are given) the party is not a ``role`` party of the model.
    """
    if not os.path.exists(path):
        raise ModelSpecError('archive %s does not exist on the host where the module runs' % path)
    if not os.path.isfile(path):
        raise ModelSpecError('archive %s is not a file' % path)
    if not os.access(path, os.R_OK):
        raise ModelSpecError('archive %s is not readable by the user running the module' % path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = set()
            for info in infos:
                problem = _unsafe_entry(info.filename)
                if problem:
                    raise ModelSpecError(
                        'archive %s is unsafe: entry %r %s, so FATE Flow would unpack it outside the model '
                        'directory. It was not used and nothing was uploaded: use the archive that FATE Flow\'s '
                        'migrate or export wrote.' % (path, info.filename, problem))
                names.add(info.filename.replace('\\', '/'))
            for entry in (PIPELINE_ENTRY, DEFINE_META_ENTRY):
                if entry not in names:
                    raise ModelSpecError(
                        'archive %s is not a FATE model archive: it has no %s (entries must be relative to the '
                        'model version directory, as FATE Flow export and migrate write them)' % (path, entry))
            info = archive.getinfo(PIPELINE_ENTRY)
            if info.file_size > MAX_PIPELINE_BYTES:
                raise ModelSpecError('archive %s: the Pipeline entry is implausibly large (%d bytes)' % (path, info.file_size))
            raw = archive.read(PIPELINE_ENTRY)
    except zipfile.BadZipFile as exc:
        raise ModelSpecError('archive %s is not a readable zip file: %s' % (path, exc))
    except (IOError, OSError) as exc:
        raise ModelSpecError('archive %s could not be read: %s' % (path, exc))
    try:
        pipeline = decode_pipeline(raw)
    except WireError as exc:
        raise ModelSpecError('archive %s: the Pipeline entry is not a valid Pipeline message (%s)' % (path, exc))
    roles = pipeline_roles(pipeline)
    conf = pipeline.get('train_runtime_conf') if isinstance(pipeline.get('train_runtime_conf'), dict) else {}
    facts = {
        'model_id': pipeline.get('model_id'),
        'model_version': pipeline.get('model_version'),
        'fate_version': pipeline.get('fate_version'),
        'parent': pipeline.get('parent', False),
        'roles': roles,
        'initiator': conf.get('initiator'),
        'entries': len(infos),
        'pipeline': pipeline,
    }
    if role is not None and party_id is not None and not party_in_roles(roles, role, party_id):
        raise ModelSpecError(
            'party %s is not a %s party of the model in %s (its roles are %s): import it with the role and party '
            'id the model was trained or migrated for' % (party_id, role, path, json.dumps(roles, sort_keys=True)))
    return facts


def pipeline_fingerprint(source):
    """What identifies a model's content across FATE versions: fate version, DSLs and roles.

    ``source`` is a decoded Pipeline or a clean /model/query row. Ids and versions are left
    out on purpose: FATE 1.9+ rewrites them on import.
    """
    conf = source.get('train_runtime_conf')
    roles = conf.get('role') if isinstance(conf, dict) else None
    return {
        'fate_version': source.get('fate_version') or None,
        'train_dsl': _as_json_value(source.get('train_dsl')),
        'inference_dsl': _as_json_value(source.get('inference_dsl')),
        'roles': _normalize_role_ids(roles),
    }


def _as_json_value(value):
    if isinstance(value, (bytes, bytearray)):
        value = value.decode('utf-8', 'replace')
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except ValueError:
            return value
    return value or None


def _normalize_role_ids(roles):
    roles = _as_json_value(roles)
    if not isinstance(roles, dict):
        return None
    return dict((name, sorted(str(pid) for pid in (ids if isinstance(ids, list) else [ids])))
                for name, ids in roles.items())
