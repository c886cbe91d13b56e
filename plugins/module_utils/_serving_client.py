# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The FATE-Serving serving-proxy HTTP client of the fate.flow collection (online inference).

PRIVATE to the fate.flow collection: this file is not a public API and may change
in any release without notice. Only the collection's own modules may import it.

* ``serving_argument_spec()`` / ``serving_module_kwargs()``: the serving-proxy connection options
  (``serving_proxy_url``, timeout, retries, TLS), documented in the module that uses them.
* ``ServingClient``: transport (retries, TLS) and ``inference()``: one
  ``POST /federation/v1/inference`` (FATE-Serving 2.x serving-proxy).
* ``ServingError``: anything that went wrong talking to the serving-proxy; ``fail_from_error()``
  turns it into a structured ``fail_json``.
* ``served_model()`` / ``guest_party_model_id()``: which model an inference answer says it used.

The TLS and error conventions are those of ``_flow_client`` (validate_certs, ca_path, client
certificate; structured failure keys; never headers or credentials in results).
"""

from __future__ import annotations

import json
import re
import time
import traceback

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    urlsplit = None

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

INFERENCE_PATH = '/federation/v1/inference'
RETRY_HTTP_STATUSES = (502, 503, 504)

# FATE-Serving 2.x status codes (fate-serving-core StatusCode) that an inference answer may carry, and
# what to do about them. A host party's failure reaches the guest's caller as "2" + the host's code.
_CODE_HINTS = {
    100: 'The request was refused as malformed: check service_id, feature_data and send_to_remote_feature_data.',
    102: 'The guest features do not fit the model: check feature_data.',
    104: 'FATE-Serving has no such model loaded: load it (fate.flow.model_load) and bind the service id '
         '(fate.flow.model_bind).',
    105: 'The guest serving-proxy could not reach a host party: check the serving-proxy route table and that the '
         'host party\'s FATE-Serving runs.',
    110: 'FATE-Serving failed; an empty message usually means no model is bound to this service id: bind it '
         '(fate.flow.model_bind) on the guest.',
    113: 'The host party has no features for the ids in send_to_remote_feature_data.',
    122: 'FATE-Serving knows no such service id: bind it (fate.flow.model_bind) on the guest.',
    123: 'FATE-Serving could not initialise the model: load it again (fate.flow.model_load).',
    2104: 'A host party\'s FATE-Serving has not loaded the model: load it on every guest and host party '
          '(fate.flow.model_load with the whole role map).',
}


# ---------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------

def serving_argument_spec(extra=None):
    """The serving-proxy connection options, merged with ``extra``."""
    spec = dict(
        serving_proxy_url=dict(type='str', required=True, fallback=(env_fallback, ['FATE_SERVING_PROXY_URL'])),
        timeout=dict(type='int', default=30),
        retries=dict(type='int', default=3),
        retry_delay=dict(type='float', default=1.0),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
    )
    if extra:
        spec.update(extra)
    return spec


def serving_module_kwargs(argument_spec, **kwargs):
    """Keyword arguments for AnsibleModule: the merged spec plus the TLS constraints."""
    return dict(argument_spec=serving_argument_spec(argument_spec), required_by={'client_key': 'client_cert'},
                **kwargs)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ServingError(Exception):
    """Anything that went wrong talking to the serving-proxy, with the context to act on it."""

    TRANSPORT = 'transport'          # no HTTP answer (connection refused, DNS, TLS, timeout)
    HTTP = 'http'                    # an HTTP status that is not 200
    NOT_JSON = 'not_json'            # the body is not FATE-Serving's JSON answer
    ENDPOINT_MISSING = 'endpoint_missing'  # 404/405: not a serving-proxy, or another path
    RETCODE = 'retcode'              # the answer's retcode is not 0 (only when the caller asks for success)
    MISMATCH = 'mismatch'            # the answer names another model than the one required

    def __init__(self, msg, url=None, http_status=None, retcode=None, retmsg=None, reason=None, hint=None,
                 answer=None):
        self.msg = msg
        self.url = url
        self.http_status = http_status
        self.retcode = retcode
        self.retmsg = retmsg
        self.reason = reason or self.TRANSPORT
        self.hint = hint
        self.answer = answer
        super(ServingError, self).__init__(self.message)

    @property
    def message(self):
        text = self.msg.strip()
        if self.hint and self.hint not in text:
            if text and text[-1] not in '.!?':
                text += '.'
            text = '%s %s' % (text, self.hint)
        return text

    def result(self):
        """The keys a module adds to fail_json (never headers or credentials)."""
        out = dict(url=self.url, http_status=self.http_status, retcode=self.retcode, retmsg=self.retmsg,
                   reason=self.reason)
        if self.answer is not None:
            out['answer'] = self.answer
        return out


def fail_from_error(module, error, **extra):
    """fail_json from a ServingError, with its structured keys."""
    result = error.result()
    result.update(extra)
    module.fail_json(msg=error.message, **result)


def code_hint(retcode):
    """What to do about an inference retcode (None when there is nothing specific to say)."""
    try:
        code = int(retcode)
    except (TypeError, ValueError):
        return None
    if code in _CODE_HINTS:
        return _CODE_HINTS[code]
    if code == 2113:
        return _CODE_HINTS[113]
    if 2000 <= code < 3000:
        return 'A host party failed (code %d = "2" + the host\'s code): see the host\'s FATE-Serving log.' % code
    return None


def _short_text(text, limit=400):
    """A one-line excerpt of a non-JSON body (HTML tags dropped)."""
    text = re.sub(r'<[^>]+>', ' ', text or '')
    text = re.sub(r'\s+', ' ', text).strip()
    return text if len(text) <= limit else text[:limit] + '...'


_FLOW_NOT_FOUND_RE = re.compile(r"<(NotFound|MethodNotAllowed) '40[45]")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def _connection_problem(exc):
    """The useful part of a requests connection error ("[Errno 111] Connection refused")."""
    text = str(exc)
    match = _ERRNO_RE.search(text)
    return match.group(0).strip() if match else _short_text(text, 200)


def _never_connected(exc):
    """True when a requests ConnectionError happened before the request could be sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, 'reason', None), (NewConnectionError, ConnectTimeoutError))


# ---------------------------------------------------------------------------
# Models in answers
# ---------------------------------------------------------------------------

def guest_party_model_id(model_id, party_id=None, role='guest'):
    """The party model id FATE-Serving reports (``guest#99#arbiter-100#guest-99#host-100#model``).

    ``model_id`` may already be a party model id (it starts with ``<role>#<party>#``); otherwise, with
    ``party_id``, it is prefixed with ``<role>#<party_id>#``; without ``party_id`` it is returned as it is.
    """
    if model_id is None:
        return None
    text = str(model_id).strip()
    if re.match(r'^(guest|host|arbiter)#[^#]+#.+', text):
        return text
    if party_id is None or str(party_id).strip() == '':
        return text
    return '%s#%s#%s' % (role, str(party_id).strip(), text)


def served_model(answer):
    """``(modelId, modelVersion)`` an inference answer says it used (None when the answer does not say)."""
    data = answer.get('data') if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        return None, None
    model_id, version = data.get('modelId'), data.get('modelVersion')
    return (None if model_id is None else str(model_id)), (None if version is None else str(version))


def answer_score(answer):
    """The answer's score as a float, or None."""
    data = answer.get('data') if isinstance(answer, dict) else None
    score = data.get('score') if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    return float(score)


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class ServingClient(object):
    """A FATE-Serving serving-proxy HTTP client bound to one AnsibleModule's connection options."""

    def __init__(self, module, session=None):
        self.module = module
        if not HAS_REQUESTS:
            module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
        params = module.params
        self.base_url = self._base_url(params['serving_proxy_url'])
        self.timeout = params.get('timeout') or 30
        self.retries = max(0, params.get('retries') or 0)
        self.retry_delay = max(0.0, params.get('retry_delay') or 0.0)
        self.verify = False if params.get('validate_certs') is False else (params.get('ca_path') or True)
        self.session = session or self._new_session(params)

    def _base_url(self, url):
        url = (url or '').strip()
        parts = urlsplit(url)
        if parts.scheme not in ('http', 'https') or not parts.netloc:
            self.module.fail_json(msg='serving_proxy_url must be an http:// or https:// URL of a FATE-Serving '
                                      'serving-proxy, such as http://127.0.0.1:8059; got %r' % url)
        url = url.rstrip('/')
        if url.endswith(INFERENCE_PATH):
            url = url[:-len(INFERENCE_PATH)]
        return url

    def _new_session(self, params):
        session = requests.Session()
        session.verify = self.verify
        if self.verify is False:
            try:
                requests.packages.urllib3.disable_warnings()
            except AttributeError:  # pragma: no cover
                pass
        if params.get('client_cert'):
            session.cert = (params['client_cert'], params['client_key']) if params.get('client_key') else params['client_cert']
        return session

    def url(self, path=INFERENCE_PATH):
        return self.base_url + path

    def _send(self, path, body):
        request = requests.Request('POST', self.url(path), data=body,
                                   headers={'Content-Type': 'application/json;charset=UTF-8'})
        prepared = self.session.prepare_request(request)
        # verify is passed explicitly so that REQUESTS_CA_BUNDLE cannot re-enable verification
        # after validate_certs=false (requests merges the environment over the session).
        settings = self.session.merge_environment_settings(prepared.url, {}, None, self.verify, None)
        return self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)

    def post(self, path, payload):
        """POST JSON, retrying connection failures and HTTP 502/503/504 (an inference changes nothing, so a
        broken connection is retried too); returns the decoded JSON object of a 200 answer."""
        url = self.url(path)
        body = json.dumps(payload).encode('utf-8')
        attempt = 0
        while True:
            problem = None
            try:
                response = self._send(path, body)
            except requests.exceptions.SSLError as exc:
                raise ServingError('TLS error talking to the serving-proxy at %s: %s' % (self.base_url, exc), url=url,
                                   hint='Check ca_path, client_cert/client_key, or set validate_certs=false for a '
                                        'test server.')
            except requests.exceptions.ConnectionError as exc:
                problem = 'could not connect (%s)' % _connection_problem(exc) if _never_connected(exc) else \
                    'the connection broke (%s)' % _connection_problem(exc)
                response = None
            except requests.exceptions.Timeout as exc:
                raise ServingError('The serving-proxy at %s did not answer within %s seconds: %s'
                                   % (self.base_url, self.timeout, exc), url=url,
                                   hint='Increase timeout; a host party that answers slowly delays the guest.')
            except requests.exceptions.RequestException as exc:
                raise ServingError('request to the serving-proxy at %s failed: %s' % (self.base_url, exc), url=url)
            if response is not None and response.status_code not in RETRY_HTTP_STATUSES:
                return self._parse(url, response)
            if response is not None:
                problem = 'HTTP %s' % response.status_code
            if attempt >= self.retries:
                if response is not None:
                    return self._parse(url, response)
                raise ServingError(
                    'The serving-proxy at %s is unreachable: %s (after %d attempt(s))'
                    % (self.base_url, problem, attempt + 1),
                    url=url, hint='Check serving_proxy_url (the serving-proxy HTTP port, 8059 by default) and that '
                                  'FATE-Serving runs and is reachable from the host running this task.')
            delay = self.retry_delay * (2 ** attempt)
            attempt += 1
            self.module.warn('serving-proxy %s: %s; retrying in %.1f s (attempt %d of %d)'
                             % (path, problem, delay, attempt + 1, self.retries + 1))
            time.sleep(delay)

    def _parse(self, url, response):
        status = response.status_code
        try:
            doc = json.loads(response.content.decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            doc = None
        if status in (404, 405):
            if isinstance(doc, dict):
                text = doc.get('error')
            else:
                text = _short_text(response.content.decode('utf-8', 'replace'))
            raise ServingError('The server at %s has no %s (HTTP %s).' % (self.base_url, urlsplit(url).path, status),
                               url=url, http_status=status, retmsg=text, reason=ServingError.ENDPOINT_MISSING,
                               hint='Check that serving_proxy_url points at the FATE-Serving serving-proxy HTTP port '
                                    '(8059 by default), not FATE Flow or the serving-server gRPC port.')
        if status != 200:
            # The serving-proxy (Spring) answers errors as {timestamp, status, error, message, path}.
            message = None
            if isinstance(doc, dict):
                message = doc.get('message') or doc.get('error') or doc.get('retmsg')
            else:
                message = _short_text(response.content.decode('utf-8', 'replace')) or '(empty)'
            raise ServingError('The serving-proxy at %s answered HTTP %s: %s' % (self.base_url, status, message),
                               url=url, http_status=status, retmsg=message, reason=ServingError.HTTP)
        if isinstance(doc, dict) and _FLOW_NOT_FOUND_RE.search(str(doc.get('retmsg') or '')):
            # FATE Flow 1.9+ answers an unknown path with HTTP 200 and retcode 100 "<NotFound '404: Not Found'>".
            raise ServingError('The server at %s has no %s: %s' % (self.base_url, urlsplit(url).path, doc['retmsg']),
                               url=url, http_status=status, retcode=doc.get('retcode'), retmsg=doc.get('retmsg'),
                               reason=ServingError.ENDPOINT_MISSING,
                               hint='This looks like FATE Flow: serving_proxy_url must point at the FATE-Serving '
                                    'serving-proxy HTTP port (8059 by default).')
        if not isinstance(doc, dict) or 'retcode' not in doc:
            text = _short_text(response.content.decode('utf-8', 'replace')) or '(empty)'
            raise ServingError('The serving-proxy at %s answered with a body that is not a FATE-Serving answer: %s'
                               % (self.base_url, text), url=url, http_status=status, retmsg=text,
                               reason=ServingError.NOT_JSON,
                               hint='Check that serving_proxy_url points at the FATE-Serving serving-proxy HTTP port.')
        return doc

    def inference(self, service_id, feature_data=None, send_to_remote_feature_data=None, case_id=None):
        """One online inference; returns FATE-Serving's answer (retcode not checked)."""
        head = {'serviceId': service_id}
        if case_id:
            head['caseId'] = case_id
        payload = {'head': head, 'body': {'featureData': dict(feature_data or {}),
                                          'sendToRemoteFeatureData': dict(send_to_remote_feature_data or {})}}
        return self.post(INFERENCE_PATH, payload)
