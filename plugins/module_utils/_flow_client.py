# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one FATE Flow 1.x HTTP client of the fate.flow collection.

PRIVATE to the fate.flow collection: this file is not a public API and may change
in any release without notice. Only the collection's own modules may import it.

* ``flow_argument_spec()`` / ``flow_module_kwargs()``: the shared connection options,
  documented by the ``fate.flow.connection`` doc fragment.
* ``FlowClient``: transport (retries, TLS, request signing, streaming uploads), the
  FATE envelope (``retcode``/``retmsg``), version detection and the model endpoints.
* ``FlowCapabilities``: every behaviour difference between FATE Flow releases, as a
  named property. Modules ask ``client.capabilities.<name>``; no module compares
  version numbers itself.
* ``FlowError``: the single exception for anything that went wrong talking to FATE
  Flow; ``fail_from_error()`` turns it into a structured ``fail_json``.

The HTTP plumbing (TLS session, retry loop, error base class) is shared with the serving-proxy
client in ``_http``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid

try:
    from urllib.parse import quote, urlencode, urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    quote = urlencode = urlsplit = None

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.fate.flow.plugins.module_utils._flow_models import (
    party_model_id,
    to_str_party_id,
)
from ansible_collections.fate.flow.plugins.module_utils._flow_multipart import MultipartFileBody
from ansible_collections.fate.flow.plugins.module_utils._http import (
    FLOW_NOT_FOUND_RE,
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    TLS_REQUIRED_BY,
    Call,
    HttpClient,
    HttpError,
    body_text,
    connection_problem as _connection_problem,
    json_body,
    never_connected as _never_connected,
    requests,
    transport_argument_spec,
)
from ansible_collections.fate.flow.plugins.module_utils._http import fail_from_error  # noqa: F401 pylint: disable=unused-import
from ansible_collections.fate.flow.plugins.module_utils._serving_link import LAYOUTS, layout_for_version

API_PREFIX = '/v1'
# Gateway answers that mean the request did not reach a working FATE Flow: resent for every call.
RETRY_HTTP_STATUSES = (502, 503)
# Answers after which the server may have done (part of) the work: resent only for read-only calls.
RETRY_READ_ONLY_HTTP_STATUSES = (500, 502, 503, 504)
SUPPORTED_RANGE = '1.4 to 1.11'


# ---------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------

def flow_argument_spec(extra=None):
    """The connection options every fate.flow module takes, merged with ``extra``."""
    spec = dict(flow_url=dict(type='str', required=True, fallback=(env_fallback, ['FATE_FLOW_URL'])))
    spec.update(transport_argument_spec())
    spec.update(
        app_key=dict(type='str', no_log=False, fallback=(env_fallback, ['FATE_FLOW_APP_KEY'])),
        secret_key=dict(type='str', no_log=True, fallback=(env_fallback, ['FATE_FLOW_SECRET_KEY'])),
    )
    if extra:
        spec.update(extra)
    return spec


def flow_module_kwargs(argument_spec, required_together=None, required_by=None, **kwargs):
    """Keyword arguments for AnsibleModule: the merged spec plus the connection constraints."""
    together = [['app_key', 'secret_key']] + list(required_together or [])
    by = dict(TLS_REQUIRED_BY)
    by.update(required_by or {})
    return dict(argument_spec=flow_argument_spec(argument_spec), required_together=together, required_by=by, **kwargs)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class FlowError(HttpError):
    """Anything that went wrong talking to FATE Flow, with the context to act on it.

    ``reason`` is one of the REASON_* constants (TRANSPORT, HTTP, NOT_JSON, ENDPOINT_MISSING and
    RETCODE come from HttpError; NOT_JSON here: 200 but the body is not FATE's JSON envelope;
    ENDPOINT_MISSING: an HTML 404, or 1.9+ NotFound); ``parties`` lists per-party results
    (role, party_id, retcode, retmsg) when a fanned-out operation failed on some parties.
    """

    CONFLICT = 'conflict'            # the object already exists (HTTP 409 on import, 1.9+)
    NOT_FOUND = 'not_found'          # the model does not exist (HTTP 404/210 on export, 404 on deploy)
    AUTH = 'auth'                    # signature or permission refused
    PARTY = 'party'                  # a fanned-out call failed on one or more parties
    UNSUPPORTED = 'unsupported'      # the FATE Flow version cannot do this
    PRECONDITION = 'precondition'    # what FATE Flow reports makes the operation pointless (e.g. not deployed)

    DEFAULT_REASON = HttpError.RETCODE
    END_MARKS = '.!?)'
    WHERE_KEYS = ('endpoint',)
    OPTIONAL_KEYS = ('party', 'parties')

    def __init__(self, msg, endpoint=None, http_status=None, retcode=None, retmsg=None, reason=None,
                 party=None, parties=None, data=None, hint=None):
        self.endpoint = endpoint
        self.party = party
        self.parties = parties
        self.data = data
        super(FlowError, self).__init__(msg, http_status=http_status, retcode=retcode, retmsg=retmsg, reason=reason,
                                        hint=hint)


# Well-known FATE / FATE-Serving messages and what the user should do about them.
_HINTS = (
    (re.compile(r"'function' object has no attribute 'get'"),
     'FATE 1.5.0 cannot migrate models (a bug fixed in 1.5.1): upgrade the cluster that runs the migration.'),
    (re.compile(r'Only deployed models could be used'),
     'Deploy the trained model first (fate.flow.model_deploy) and load the deployed child version.'),
    # Migrate's wording; load and deploy say "not exists in model local cache".
    (re.compile(r'Can not found .* model local cache'),
     "The model is not in that party's model_local_cache: check model_id and model_version, import the model "
     "there first, or (federated_mode SINGLE) list in execute_party only parties whose models are on this cluster."),
    (re.compile(r'not exists? in model local cache'),
     "The model is not in that party's model_local_cache: check model_id and model_version, or import it on "
     "that party first."),
    (re.compile(r'Unify model version .* has been occupied'),
     'Choose another unify_model_version: this one is already used by a model on that FATE Flow.'),
    (re.compile(r'local cache already existed|Model already exists|define_meta data already exists'),
     'The model is already imported there: remove it first, or (FATE 1.9+) import with force.'),
    (re.compile(r'Please configure servings address'),
     'Configure the servings addresses in that FATE Flow\'s service_conf.yaml (servings.hosts) or ZooKeeper, '
     'or pass servings to model_bind.'),
    (re.compile(r'no service id'), 'Give a non-empty service_id.'),
    (re.compile(r'is not in (model roles|role)'),
     'Import with the role and party id the model was trained or migrated for.'),
    (re.compile(r'[Hh]ash (not match|mismatch)'),
     'The archive was changed or truncated on the way: copy it again from where it was written.'),
    (re.compile(r'structure of roles data'),
     'role and migrate_role must have the same roles with the same number of parties.'),
    (re.compile(r'model with version .* can not be found', re.I),
     'Check model_version: FATE Flow has no model with that version.'),
    (re.compile(r'No space left on device|Errno 28\b'),
     "That party's FATE Flow host ran out of disk space: free space under its FATE home (temp and "
     "model_local_cache directories), then run again; parties already done are not done twice."),
    (re.compile(r'Permission denied|Errno 13\b'),
     "That party's FATE Flow cannot write its files: check the owner and permissions of its FATE home, then run "
     "again."),
    (re.compile(r'required argument|required parameters are missing'),
     'A required field is missing from the request; this FATE Flow may expect a different request shape.'),
)


def _hint_for(retmsg, retcode=None, http_status=None):
    text = '' if retmsg is None else str(retmsg)
    for pattern, hint in _HINTS:
        if pattern.search(text):
            return hint
    if http_status in (401, 403, 425) or retcode in (108, 109):
        return ('FATE Flow refused the request signature or permission: check app_key and secret_key (they must '
                'match http_app_key/http_secret_key or the authentication settings of that FATE Flow) and that '
                'the clocks of both hosts agree.')
    return None


def _fatal_for_detection(exc):
    """Errors that end version detection at once: trying the other version endpoint cannot help."""
    return (exc.reason in (FlowError.TRANSPORT, FlowError.UNSUPPORTED, FlowError.AUTH)
            or (exc.reason == FlowError.HTTP and (exc.http_status or 0) >= 500))


# ---------------------------------------------------------------------------
# Versions and capabilities
# ---------------------------------------------------------------------------

def parse_version(text):
    """``(major, minor, patch)`` from ``"1.11.4"``, ``"v1.6"`` or ``"1.9.0-rc1"``; None if unparsable."""
    if text is None:
        return None
    match = re.match(r'^\s*v?(\d+)\.(\d+)(?:\.(\d+))?', str(text))
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


class FlowCapabilities(object):
    """What one FATE Flow release can do and how it behaves.

    Built from the answer of the version endpoint. Behaviour follows the FATE Flow
    release (``FATEFlow`` in fate.env, 1.7+), else the FATE release (1.4 to 1.6, where
    FATE Flow is part of FATE). Every property is named after the behaviour it
    describes; ``as_dict()`` lists them for flow_info.
    """

    NAMES = (
        'supported', 'supports_migrate', 'supports_query', 'supports_deploy', 'load_requires_deployed',
        'supports_transfer_path', 'writes_sha1_sidecar', 'import_has_force_update_and_hash',
        'duplicate_import_is_409', 'import_returns_data', 'import_rewrites_ids', 'keeps_migrated_model',
        'records_archive_sha256', 'serving_needs_str_party_ids', 'migrate_needs_int_party_ids',
        'load_needs_work_mode', 'has_server_version_endpoint', 'has_legacy_version_endpoint',
        'supports_signing', 'errors_use_repr', 'unknown_path_is_json', 'export_missing_status',
        'migrated_archive_has_import_model_json', 'query_requires_model_version', 'temp_dir', 'model_local_cache',
        'config_files',
    )

    def __init__(self, versions, source=None):
        self.versions = dict(versions or {})
        self.source = source
        fate = self.versions.get('FATE')
        flow = self.versions.get('FATEFlow')
        self.fate_version = None if fate is None else str(fate)
        self.flow_version = str(flow) if flow else self.fate_version
        self.api_version = self.versions.get('API') or 'v1'
        self.version = parse_version(self.flow_version) or parse_version(self.fate_version)

    def _at_least(self, *version):
        return self.version is not None and self.version >= version

    def _below(self, *version):
        return self.version is not None and self.version < version

    # -- support --------------------------------------------------------------------
    @property
    def supported(self):
        """FATE Flow 1.4 to 1.11 (1.x with the /v1 API)."""
        return self._at_least(1, 4) and self._below(2, 0) and str(self.api_version).lower() == 'v1'

    def unsupported_reason(self):
        if self.version is None:
            return 'the FATE Flow version %r could not be understood' % (self.flow_version,)
        if self.version[0] >= 2 or str(self.api_version).lower() != 'v1':
            return ('FATE Flow %s speaks the %s API; fate.flow supports FATE Flow %s (the /v1 API) only. FATE Flow '
                    '2.x has no working model migrate or load.' % (self.flow_version, self.api_version, SUPPORTED_RANGE))
        return 'FATE Flow %s is older than 1.4; fate.flow supports FATE Flow %s' % (self.flow_version, SUPPORTED_RANGE)

    # -- API surface ----------------------------------------------------------------
    @property
    def supports_migrate(self):
        """/model/migrate works: 1.5.1+ (1.4 has none; every 1.5.0 migration fails on a bug)."""
        return self._at_least(1, 5, 1)

    @property
    def supports_query(self):
        """/model/query: 1.5.1+."""
        return self._at_least(1, 5, 1)

    @property
    def supports_deploy(self):
        """/model/deploy: 1.5.1+."""
        return self._at_least(1, 5, 1)

    @property
    def load_requires_deployed(self):
        """/load refuses trained (parent) DSL-v2 models: 1.5.1+."""
        return self._at_least(1, 5, 1)

    @property
    def supports_transfer_path(self):
        """/model/transfer/<party_model_id>/<version>: 1.5.2, 1.5.3, 1.6.1 and 1.7+ (not 1.6.0)."""
        if self.version is None or self.version[:2] == (1, 6):
            return self._at_least(1, 6, 1)
        return self._at_least(1, 5, 2)

    @property
    def writes_sha1_sidecar(self):
        """Archives get a ``<zip>.sha1`` sidecar: 1.5.2, 1.5.3, 1.6.1 and 1.7 to 1.8."""
        return self.supports_transfer_path and self._below(1, 9)

    @property
    def import_has_force_update_and_hash(self):
        """Import takes force_update ("0"/"1") and hash (sha256 hex): 1.9+."""
        return self._at_least(1, 9)

    @property
    def duplicate_import_is_409(self):
        """A duplicate import answers HTTP 409 (else retcode 100 "local cache already existed"): 1.9+."""
        return self._at_least(1, 9)

    @property
    def import_returns_data(self):
        """Import answers data {job_id, role, party_id, model_id, model_version}: 1.9+."""
        return self._at_least(1, 9)

    @property
    def import_rewrites_ids(self):
        """Import rewrites the Pipeline ids to the request's: 1.9+."""
        return self._at_least(1, 9)

    @property
    def keeps_migrated_model(self):
        """Migration registers the new model and leaves it in model_local_cache: 1.9+."""
        return self._at_least(1, 9)

    @property
    def records_archive_sha256(self):
        """Model rows carry f_archive_sha256 of the packaged archive: 1.9+."""
        return self._at_least(1, 9)

    @property
    def serving_needs_str_party_ids(self):
        """Load/bind break on int party ids up to 1.7.0; strings are safe everywhere, so always send strings."""
        return not self._at_least(1, 7, 1)

    @property
    def migrate_needs_int_party_ids(self):
        """Migrate needs JSON integer party ids in every release (the model converters check it)."""
        return True

    @property
    def load_needs_work_mode(self):
        """/load derives federated_mode from job_parameters.work_mode (KeyError without it): up to 1.6."""
        return self._below(1, 7)

    @property
    def has_server_version_endpoint(self):
        """POST /v1/server/version/get: 1.7+."""
        return self._at_least(1, 7)

    @property
    def has_legacy_version_endpoint(self):
        """POST /v1/version/get: up to 1.9 (1.10+ answers it with 200/retcode 100 NotFound)."""
        return self._below(1, 10)

    @property
    def supports_signing(self):
        """HMAC request signing (TIMESTAMP, NONCE, APP_KEY, SIGNATURE headers): 1.7+."""
        return self._at_least(1, 7)

    @property
    def errors_use_repr(self):
        """Unhandled errors come back as repr(e) (else str(e)): 1.9+."""
        return self._at_least(1, 9)

    @property
    def unknown_path_is_json(self):
        """An unknown path answers HTTP 200 retcode 100 "<NotFound ...>" (else an HTML 404): 1.9+."""
        return self._at_least(1, 9)

    @property
    def export_missing_status(self):
        """HTTP status of an export of a missing model: 404 on 1.9+, 210 before."""
        return 404 if self._at_least(1, 9) else 210

    @property
    def migrated_archive_has_import_model_json(self):
        """Migrated archives contain import_model.json: 1.8+."""
        return self._at_least(1, 8)

    @property
    def query_requires_model_version(self):
        """/model/query needs model_version: 1.5.1 to 1.8."""
        return self.supports_query and self._below(1, 9)

    # -- layout (relative to the FATE home, e.g. /data/projects/fate) ------------------
    @property
    def temp_dir(self):
        """Where migrate and export write archives: temp/fate_flow up to 1.6, fateflow/temp from 1.7."""
        return 'fateflow/temp' if self._at_least(1, 7) else 'temp/fate_flow'

    @property
    def model_local_cache(self):
        """Where models live: model_local_cache up to 1.6, fateflow/model_local_cache from 1.7."""
        return 'fateflow/model_local_cache' if self._at_least(1, 7) else 'model_local_cache'

    @property
    def config_files(self):
        """FATE Flow's configuration files, from the serving link's layout table (the one place that knows them)."""
        layout = 'service_conf'
        if self.version is not None and self.version[0] == 1:
            layout = layout_for_version(self.version)
        return list(LAYOUTS[layout]['files'])

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.NAMES)


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class FlowClient(HttpClient):
    """A FATE Flow 1.x HTTP API client bound to one AnsibleModule's connection options."""

    URL_OPTION = 'flow_url'
    BAD_URL = 'flow_url must be an http:// or https:// URL of a FATE Flow, such as http://127.0.0.1:9380; got %r'
    URL_SUFFIX = API_PREFIX
    SERVICE = LABEL = 'FATE Flow'
    ERROR = FlowError
    UNREACHABLE_HINT = 'Check flow_url and that FATE Flow is running and reachable from the host running this task.'

    def __init__(self, module, session=None):
        if not HAS_REQUESTS:
            module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
        self.app_key = module.params.get('app_key')
        self.secret_key = module.params.get('secret_key')
        self._capabilities = None
        super(FlowClient, self).__init__(module, session)

    def _init_transport(self, params, session=None):
        for option, low, high in (('timeout', 1, 86400), ('retries', 0, 100), ('retry_delay', 0, 3600)):
            value = params.get(option)
            if value is not None and not low <= value <= high:
                self.module.fail_json(msg='%s must be between %s and %s, got %s' % (option, low, high, value))
        super(FlowClient, self)._init_transport(params, session)

    @staticmethod
    def _valid_url(url):
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ('http', 'https') and bool(parts.hostname) and parts.port != 0  # port: ValueError
        except ValueError:
            valid = False
        return valid and not re.search(r'\s', url)

    # -- signing ------------------------------------------------------------------------
    def signature_headers(self, path_url, body=b'', form_fields=None, timestamp=None, nonce=None):
        """FATE Flow's request signature headers (empty without app_key/secret_key).

        SIGNATURE = base64(HMAC-SHA1(secret, TIMESTAMP \\n NONCE \\n APP_KEY \\n path \\n
        json body or "" \\n url-encoded sorted form fields or "")).
        """
        if not (self.app_key and self.secret_key):
            return {}
        timestamp = timestamp or str(int(time.time() * 1000))
        nonce = nonce or str(uuid.uuid1())
        form = b''
        if form_fields:
            form = urlencode(sorted(form_fields), quote_via=quote, safe='-._~').encode('ascii')
        message = b'\n'.join([timestamp.encode('ascii'), nonce.encode('ascii'), self.app_key.encode('utf-8'),
                              path_url.encode('utf-8'), body or b'', form])
        digest = hmac.new(self.secret_key.encode('utf-8'), message, hashlib.sha1).digest()
        return {'TIMESTAMP': timestamp, 'NONCE': nonce, 'APP_KEY': self.app_key,
                'SIGNATURE': base64.b64encode(digest).decode('ascii')}

    # -- transport ----------------------------------------------------------------------
    def url(self, endpoint, prefix=API_PREFIX):
        return self.base_url + prefix + endpoint

    def _send(self, method, endpoint, body, headers, form_fields=None, prefix=API_PREFIX):
        """One HTTP request (no retries); the signature is computed for this attempt."""
        sign_body = body if isinstance(body, bytes) else b''
        return self._send_request(method, self.url(endpoint, prefix), body, headers,
                                  lambda prepared: self.signature_headers(prepared.path_url, sign_body, form_fields))

    def _send_with_retries(self, method, endpoint, body, headers, form_fields=None, read_only=False):
        """Send, retrying with exponential backoff what is safe to resend.

        Every call: connection failures before the request went out, HTTP 502 and 503. Read-only
        calls also: a connection that broke after the request went out, read timeouts, HTTP 500
        and 504. A call that changes something is not resent after those: the operation may have
        happened, and resending it could do it twice. The response that ends the retries carries
        ``fate_attempts`` (how many times it was sent).
        """
        path = API_PREFIX + endpoint
        call = Call(method, path, {'endpoint': path}, read_only,
                    RETRY_READ_ONLY_HTTP_STATUSES if read_only else RETRY_HTTP_STATUSES)
        return self._retry_loop(lambda: self._send(method, endpoint, body, headers, form_fields), call)

    def _connection_failed(self, exc, call):
        if not (call.read_only or _never_connected(exc)):
            raise FlowError(
                'The connection to FATE Flow at %s broke during %s %s: %s'
                % (self.base_url, call.method, call.path, _connection_problem(exc)),
                endpoint=call.path, reason=FlowError.TRANSPORT,
                hint='It was not resent: the operation may have completed on the server, so check its state '
                     'before running again.')
        return 'could not connect (%s)' % _connection_problem(exc)

    def _timed_out(self, exc, call):
        if not call.read_only:
            # The server may still be working on the request: never resend it.
            raise FlowError(
                'FATE Flow at %s did not answer %s %s within %s seconds.'
                % (self.base_url, call.method, call.path, self.timeout),
                endpoint=call.path, reason=FlowError.TRANSPORT,
                hint='It was not resent: the operation may still complete on the server, so check its state '
                     'before running again (a rerun of the task does), or increase timeout.')
        return super(FlowClient, self)._timed_out(exc, call)

    def _gave_up(self, problem, attempts, call):
        if problem.startswith('no answer'):
            return FlowError(
                'FATE Flow at %s did not answer %s %s within %s seconds (%d attempt(s)).'
                % (self.base_url, call.method, call.path, self.timeout, attempts), endpoint=call.path,
                reason=FlowError.TRANSPORT,
                hint='Check that FATE Flow is not overloaded or stuck (its logs), or increase timeout; then '
                     'run again.')
        return super(FlowClient, self)._gave_up(problem, attempts, call)

    def _parse(self, endpoint, response, allow_retcodes=(0,)):
        """The JSON envelope of a response, or a FlowError."""
        path = API_PREFIX + endpoint
        status = response.status_code
        body = json_body(response)
        if not isinstance(body, dict):
            text = body_text(response)
            if status in (404, 405):
                raise FlowError(
                    'FATE Flow at %s has no endpoint %s (HTTP %s).' % (self.base_url, path, status),
                    endpoint=path, http_status=status, retmsg=text, reason=FlowError.ENDPOINT_MISSING,
                    hint='This FATE Flow release may not support the operation; check flow_url and the FATE version.')
            if status >= 500:
                attempts = getattr(response, 'fate_attempts', 1)
                hint = ('FATE Flow, or a proxy in front of it, is failing: check that FATE Flow runs and what its logs '
                        '(fate_flow_stat.log) say, then run again.')
                if attempts == 1 and status not in RETRY_HTTP_STATUSES:
                    hint += (' The request was not resent: it may have completed on the server, so check its state '
                             'before running again (a rerun of the task does).')
                raise FlowError(
                    'FATE Flow at %s answered %s with HTTP %s (%s)%s.'
                    % (self.base_url, path, status, text or 'empty body',
                       '' if attempts == 1 else ', %d attempts in a row' % attempts),
                    endpoint=path, http_status=status, retmsg=text, reason=FlowError.HTTP, hint=hint)
            raise FlowError(
                'FATE Flow at %s answered %s with HTTP %s and a body that is not FATE Flow JSON: %s'
                % (self.base_url, path, status, text or '(empty)'),
                endpoint=path, http_status=status, retmsg=text,
                reason=FlowError.HTTP if status != 200 else FlowError.NOT_JSON,
                hint='Check that flow_url points at the FATE Flow HTTP port (9380 by default), not a proxy or another service.')
        if 'retcode' not in body:
            if 'code' in body and 'message' in body:
                raise FlowError(
                    'The server at %s answered %s like FATE Flow 2.x (code/message, not retcode/retmsg).' % (self.base_url, path),
                    endpoint=path, http_status=status, retcode=body.get('code'), retmsg=body.get('message'),
                    reason=FlowError.UNSUPPORTED,
                    hint='fate.flow supports FATE Flow %s (the /v1 API) only.' % SUPPORTED_RANGE)
            raise FlowError('FATE Flow answered %s with JSON that has no retcode (HTTP %s).' % (path, status),
                            endpoint=path, http_status=status, reason=FlowError.NOT_JSON)
        retcode = body.get('retcode')
        retmsg = body.get('retmsg')
        if retcode == 100 and retmsg and FLOW_NOT_FOUND_RE.search(str(retmsg)):
            raise FlowError('FATE Flow at %s has no endpoint %s (%s).' % (self.base_url, path, retmsg),
                            endpoint=path, http_status=status, retcode=retcode, retmsg=retmsg,
                            reason=FlowError.ENDPOINT_MISSING,
                            hint='This FATE Flow release does not support the operation.')
        if status != 200:
            reason = {409: FlowError.CONFLICT, 404: FlowError.NOT_FOUND, 210: FlowError.NOT_FOUND,
                      401: FlowError.AUTH, 403: FlowError.AUTH, 425: FlowError.AUTH}.get(status, FlowError.HTTP)
            raise FlowError('FATE Flow %s failed with HTTP %s: %s' % (path, status, retmsg),
                            endpoint=path, http_status=status, retcode=retcode, retmsg=retmsg, reason=reason,
                            data=body.get('data'), hint=_hint_for(retmsg, retcode, status))
        if retcode not in allow_retcodes:
            reason = FlowError.AUTH if retcode in (108, 109) else FlowError.RETCODE
            raise FlowError('FATE Flow %s failed with retcode %s: %s' % (path, retcode, retmsg),
                            endpoint=path, http_status=status, retcode=retcode, retmsg=retmsg, reason=reason,
                            data=body.get('data'), hint=_hint_for(retmsg, retcode, status))
        return body

    def post(self, endpoint, payload=None, allow_retcodes=(0,), read_only=False):
        """POST a JSON payload to ``/v1<endpoint>`` and return the envelope (retcode checked)."""
        body = json.dumps({} if payload is None else payload).encode('utf-8')
        response = self._send_with_retries('POST', endpoint, body, {'Content-Type': 'application/json'},
                                           read_only=read_only)
        return self._parse(endpoint, response, allow_retcodes)

    def upload(self, endpoint, fields, path, file_field='file', allow_retcodes=(0,)):
        """POST a multipart form: ``fields`` (ordered pairs) then the file at ``path``, streamed from disk.

        The request signature covers the form fields, never the file.
        """
        multipart = MultipartFileBody(fields, file_field, path)
        headers = {'Content-Type': multipart.content_type}
        response = self._send_with_retries('POST', endpoint, multipart, headers, form_fields=multipart.fields)
        return self._parse(endpoint, response, allow_retcodes)

    # -- versions -----------------------------------------------------------------------
    @property
    def capabilities(self):
        """The FATE Flow's capabilities, detected once per client; unsupported versions raise FlowError."""
        if self._capabilities is None:
            capabilities = self.detect_version()
            if not capabilities.supported:
                raise FlowError(capabilities.unsupported_reason(), endpoint=capabilities.source,
                                reason=FlowError.UNSUPPORTED)
            self._capabilities = capabilities
        return self._capabilities

    def ensure_supported(self):
        """Detect the version now; raises FlowError when FATE Flow is unreachable or unsupported."""
        return self.capabilities

    def detect_version(self):
        """Ask FATE Flow its versions: /v1/server/version/get (1.7+), else /v1/version/get (1.4 to 1.9).

        Returns FlowCapabilities (possibly unsupported). Raises FlowError when FATE Flow is
        unreachable or answers neither endpoint.
        """
        first_error = None
        try:
            body = self.post('/server/version/get', {}, read_only=True)
            data = body.get('data')
            if isinstance(data, dict) and (data.get('FATE') or data.get('FATEFlow')):
                return FlowCapabilities(data, source=API_PREFIX + '/server/version/get')
            first_error = FlowError('FATE Flow answered /v1/server/version/get without versions: %r' % (data,),
                                    endpoint=API_PREFIX + '/server/version/get', reason=FlowError.NOT_JSON)
        except FlowError as exc:
            if _fatal_for_detection(exc):
                raise
            first_error = exc
        try:
            body = self.post('/version/get', {'module': 'FATE'}, read_only=True)
        except FlowError as exc:
            if _fatal_for_detection(exc):
                raise
            if exc.reason == FlowError.ENDPOINT_MISSING and first_error.reason == FlowError.ENDPOINT_MISSING:
                self._raise_if_v2(exc)
                raise FlowError(
                    'The server at %s answers neither /v1/server/version/get nor /v1/version/get, so it is not a '
                    'FATE Flow 1.x.' % self.base_url, endpoint=API_PREFIX + '/version/get', http_status=exc.http_status,
                    retcode=exc.retcode, retmsg=exc.retmsg, reason=FlowError.ENDPOINT_MISSING,
                    hint='Check flow_url (the FATE Flow HTTP port, 9380 by default).')
            raise first_error
        data = body.get('data')
        version = None
        if isinstance(data, dict):
            version = data.get('FATE')
            if version is None:
                # 1.4 to 1.6 key the answer by the requested module name; take the one non-API value.
                values = [v for k, v in data.items() if k != 'API' and v]
                version = values[0] if len(values) == 1 else None
        if not version:
            raise FlowError('FATE Flow answered /v1/version/get without a FATE version: %r' % (data,),
                            endpoint=API_PREFIX + '/version/get', reason=FlowError.NOT_JSON,
                            hint='Check fate.env on the FATE Flow host.')
        versions = {'FATE': version}
        if isinstance(data, dict) and data.get('API'):
            versions['API'] = data['API']
        return FlowCapabilities(versions, source=API_PREFIX + '/version/get')

    def _raise_if_v2(self, cause):
        """Both /v1 version endpoints are missing: say so clearly if this is a /v2 (FATE Flow 2.x) server."""
        try:
            response = self._send('GET', '/server/fateflow', None, {}, prefix='/v2')
        except requests.exceptions.RequestException:
            return
        body = json_body(response)
        if isinstance(body, dict) and 'code' in body and 'retcode' not in body:
            raise FlowError(
                'The server at %s is a FATE Flow 2.x (it serves the /v2 API, not /v1); fate.flow supports FATE Flow %s '
                'only.' % (self.base_url, SUPPORTED_RANGE), endpoint='/v2/server/fateflow',
                http_status=response.status_code, retcode=body.get('code'), retmsg=body.get('message'),
                reason=FlowError.UNSUPPORTED)

    _NEEDS = {
        'supports_query': 'FATE Flow 1.5.1 or later (POST /v1/model/query)',
        'supports_deploy': 'FATE Flow 1.5.1 or later (POST /v1/model/deploy)',
        'supports_migrate': 'FATE Flow 1.5.1 or later (POST /v1/model/migrate; 1.4 has none and 1.5.0 is broken)',
    }

    def require(self, capability, action):
        """Raise FlowError(UNSUPPORTED) unless the capability holds."""
        caps = self.capabilities
        if not getattr(caps, capability):
            needs = self._NEEDS.get(capability) or (getattr(type(caps), capability).__doc__ or capability).strip()
            raise FlowError('%s needs %s; the FATE Flow at %s is %s.' % (action, needs, self.base_url, caps.flow_version),
                            reason=FlowError.UNSUPPORTED)

    # -- model endpoints ----------------------------------------------------------------
    def query_models(self, model_id=None, model_version=None, role=None, party_id=None, query_filters=None):
        """Rows of /v1/model/query (1.5.1+); [] when FATE Flow finds no such model.

        Filters that are None are left out. An empty string is sent as is: FATE Flow 1.5.1
        to 1.8 need a model_version argument but treat an empty one as "any version".
        """
        self.require('supports_query', 'Querying models')
        payload = {}
        for key, value in (('model_id', model_id), ('model_version', model_version), ('role', role)):
            if value is not None:
                payload[key] = value
        if party_id is not None:
            payload['party_id'] = str(party_id)
        if query_filters:
            payload['query_filters'] = list(query_filters)
        try:
            body = self.post('/model/query', payload, read_only=True)
        except FlowError as exc:
            if exc.retcode == 100 and exc.retmsg and 'Query model info failed' in str(exc.retmsg):
                return []
            if exc.retmsg and "required positional argument: 'model_version'" in str(exc.retmsg):
                exc.hint = 'FATE Flow before 1.9 needs model_version to query models.'
            raise
        data = body.get('data')
        if isinstance(data, dict):
            data = [data]
        return [row for row in (data or []) if isinstance(row, dict)]

    def find_model(self, model_id, model_version, role, party_id):
        """The clean row of one party's model, or None."""
        for row in self.query_models(model_id=model_id, model_version=model_version, role=role, party_id=party_id):
            clean = clean_row(row)
            if (str(clean.get('role', role)) == str(role) and str(clean.get('party_id', party_id)) == str(party_id)
                    and str(clean.get('model_version', model_version)) == str(model_version)):
                return clean
        return None

    def migrate(self, payload, execute_party):
        """POST /v1/model/migrate; every executing party is checked (FATE answers "success" even when parties fail)."""
        self.require('supports_migrate', 'Model migration')
        body = self.post('/model/migrate', payload, allow_retcodes=(0, 101))
        expected = [(role, pid) for role in sorted(execute_party) for pid in execute_party[role]]
        parties = check_party_results('/model/migrate', body, expected)
        return body, parties

    def deploy(self, payload):
        """POST /v1/model/deploy (1.5.1+); per-party results checked."""
        self.require('supports_deploy', 'Deploying models')
        body = self.post('/model/deploy', payload, allow_retcodes=(0, 101))
        parties = check_party_results('/model/deploy', body, None)
        return body, parties

    def load(self, payload, expected):
        """POST /v1/model/load; per-party results checked."""
        body = self.post('/model/load', payload, allow_retcodes=(0, 101))
        parties = check_party_results('/model/load', body, expected)
        return body, parties

    def bind(self, payload):
        """POST /v1/model/bind (local, answered with FATE-Serving's status code)."""
        return self.post('/model/bind', payload)

    def import_model(self, path, role, party_id, model_id, model_version, force_update=False, sha256=None):
        """Multipart POST /v1/model/import, the archive streamed from ``path``."""
        fields = [('role', role), ('party_id', to_str_party_id(party_id)), ('model_id', model_id),
                  ('model_version', model_version)]
        if self.capabilities.import_has_force_update_and_hash:
            fields.append(('force_update', '1' if force_update else '0'))
            if sha256:
                fields.append(('hash', sha256))
        return self.upload('/model/import', fields, path)


# ---------------------------------------------------------------------------
# Helpers on answers
# ---------------------------------------------------------------------------

def clean_row(row):
    """A /model/query row with the ``f_`` prefixes stripped."""
    return dict((key[2:] if key.startswith('f_') else key, value) for key, value in row.items())


def check_party_results(endpoint, body, expected):
    """Per-party results of a fanned-out call (migrate, load, deploy).

    ``data[role][party_id]`` holds each party's retcode and ``data.detail[role][party_id]``
    its ``{retcode, retmsg}``; a missing detail entry means the initiator could not reach
    that party. ``expected`` lists ``(role, party_id)`` pairs that must be there (None:
    take what the answer lists). Returns the results; raises FlowError(PARTY) naming every
    failed party, or FlowError(RETCODE) when the overall answer failed without detail.
    """
    path = API_PREFIX + endpoint
    data = body.get('data') if isinstance(body.get('data'), dict) else {}
    detail = data.get('detail') if isinstance(data.get('detail'), dict) else {}
    pairs = list(expected) if expected is not None else []
    if expected is None:
        for role in sorted(data):
            if role == 'detail' or not isinstance(data[role], dict):
                continue
            for pid in data[role]:
                pairs.append((role, pid))
    results = []
    for role, pid in pairs:
        codes = data.get(role) if isinstance(data.get(role), dict) else {}
        details = detail.get(role) if isinstance(detail.get(role), dict) else {}
        key = str(pid)
        entry = details.get(key)
        code = codes.get(key)
        if isinstance(entry, dict):
            retcode = entry.get('retcode', code)
            retmsg = entry.get('retmsg')
            reached = True
        else:
            retcode = code if code is not None else None
            retmsg = None
            reached = False
        ok = reached and retcode == 0
        if not reached:
            if key in codes:
                retmsg = ('no answer from this party: the initiating FATE Flow could not reach it (federated '
                          'transport failure, retcode %s)' % code)
            else:
                retmsg = 'this party is missing from the answer'
        results.append({'role': role, 'party_id': pid, 'retcode': retcode, 'retmsg': retmsg, 'ok': ok,
                        'reached': reached})
    failed = [r for r in results if not r['ok']]
    overall = body.get('retcode')
    if failed:
        lines = []
        hints = []
        for r in failed:
            hint = _hint_for(r['retmsg'], r['retcode']) if r['reached'] else (
                'Check the route to the unreached parties (federated_mode MULTIPLE needs the proxy/rollsite route) '
                'or run with federated_mode SINGLE on the cluster that holds their models.')
            lines.append('%s %s: %s' % (r['role'], r['party_id'], str(r['retmsg']).strip().rstrip('.')))
            if hint and hint not in hints:
                hints.append(hint)
        raise FlowError('%s failed on %d of %d part%s - %s.' % (path, len(failed), len(results),
                                                                'y' if len(results) == 1 else 'ies', '; '.join(lines)),
                        endpoint=path, http_status=200, retcode=overall, retmsg=body.get('retmsg'),
                        reason=FlowError.PARTY, parties=results, hint=' '.join(hints) or None,
                        party={'role': failed[0]['role'], 'party_id': failed[0]['party_id']})
    if overall not in (0, None):
        raise FlowError('%s failed with retcode %s: %s' % (path, overall, body.get('retmsg')), endpoint=path,
                        http_status=200, retcode=overall, retmsg=body.get('retmsg'), reason=FlowError.RETCODE,
                        parties=results, hint=_hint_for(body.get('retmsg'), overall))
    return results


def party_model_ids(roles, model_id):
    """``{role: {party_id: party_model_id}}`` for a role map."""
    return dict((role, dict((str(pid), party_model_id(role, pid, model_id)) for pid in ids)) for role, ids in roles.items())
