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

The TLS, retry and error conventions are those of ``_flow_client`` (validate_certs, ca_path, client
certificate; structured failure keys; never headers or credentials in results): both clients build
on ``_http``.
"""

from __future__ import annotations

import json
import re
# The retry pause (in _http) is time.sleep; tests reach it through this module.
import time  # noqa: F401 pylint: disable=unused-import

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    urlsplit = None

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.fate.flow.plugins.module_utils._http import (
    FLOW_NOT_FOUND_RE,
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    TLS_REQUIRED_BY,
    Call,
    HttpClient,
    HttpError,
    body_text,
    json_body,
    transport_argument_spec,
)
from ansible_collections.fate.flow.plugins.module_utils._http import fail_from_error  # noqa: F401 pylint: disable=unused-import

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
    spec = dict(serving_proxy_url=dict(type='str', required=True, fallback=(env_fallback, ['FATE_SERVING_PROXY_URL'])))
    spec.update(transport_argument_spec())
    if extra:
        spec.update(extra)
    return spec


def serving_module_kwargs(argument_spec, **kwargs):
    """Keyword arguments for AnsibleModule: the merged spec plus the TLS constraints."""
    return dict(argument_spec=serving_argument_spec(argument_spec), required_by=dict(TLS_REQUIRED_BY),
                **kwargs)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ServingError(HttpError):
    """Anything that went wrong talking to the serving-proxy, with the context to act on it.

    ``reason``: TRANSPORT, HTTP, NOT_JSON (the body is not FATE-Serving's JSON answer), ENDPOINT_MISSING
    (404/405: not a serving-proxy, or another path), RETCODE (only when the caller asks for success) from
    HttpError, or MISMATCH.
    """

    MISMATCH = 'mismatch'            # the answer names another model than the one required

    WHERE_KEYS = ('url',)
    OPTIONAL_KEYS = ('answer',)

    def __init__(self, msg, url=None, http_status=None, retcode=None, retmsg=None, reason=None, hint=None,
                 answer=None):
        self.url = url
        self.answer = answer
        super(ServingError, self).__init__(msg, http_status=http_status, retcode=retcode, retmsg=retmsg,
                                           reason=reason, hint=hint)


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

class ServingClient(HttpClient):
    """A FATE-Serving serving-proxy HTTP client bound to one AnsibleModule's connection options.

    An inference changes nothing, so a broken connection is resent like a refused one; a timeout is not
    (a slow host party would only be asked again).
    """

    URL_OPTION = 'serving_proxy_url'
    BAD_URL = ('serving_proxy_url must be an http:// or https:// URL of a FATE-Serving serving-proxy, such as '
               'http://127.0.0.1:8059; got %r')
    URL_SUFFIX = INFERENCE_PATH
    SERVICE = 'the serving-proxy'
    LABEL = 'serving-proxy'
    ERROR = ServingError
    UNREACHABLE_HINT = ('Check serving_proxy_url (the serving-proxy HTTP port, 8059 by default) and that '
                        'FATE-Serving runs and is reachable from the host running this task.')

    def __init__(self, module, session=None):
        if not HAS_REQUESTS:
            module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
        super(ServingClient, self).__init__(module, session)

    def url(self, path=INFERENCE_PATH):
        return self.base_url + path

    def _send(self, path, body):
        return self._send_request('POST', self.url(path), body, {'Content-Type': 'application/json;charset=UTF-8'})

    def post(self, path, payload):
        """POST JSON, retrying connection failures and HTTP 502/503/504 (an inference changes nothing, so a
        broken connection is retried too); returns the decoded JSON object of a 200 answer."""
        url = self.url(path)
        body = json.dumps(payload).encode('utf-8')
        response = self._retry_loop(lambda: self._send(path, body), Call('POST', path, {'url': url}, True,
                                                                         RETRY_HTTP_STATUSES))
        return self._parse(url, response)

    def _timed_out(self, exc, call):
        raise ServingError('The serving-proxy at %s did not answer within %s seconds: %s'
                           % (self.base_url, self.timeout, exc), url=call.where['url'],
                           hint='Increase timeout; a host party that answers slowly delays the guest.')

    def _parse(self, url, response):
        status = response.status_code
        doc = json_body(response)
        if status in (404, 405):
            if isinstance(doc, dict):
                text = doc.get('error')
            else:
                text = body_text(response)
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
                message = body_text(response) or '(empty)'
            raise ServingError('The serving-proxy at %s answered HTTP %s: %s' % (self.base_url, status, message),
                               url=url, http_status=status, retmsg=message, reason=ServingError.HTTP)
        if isinstance(doc, dict) and FLOW_NOT_FOUND_RE.search(str(doc.get('retmsg') or '')):
            # FATE Flow 1.9+ answers an unknown path with HTTP 200 and retcode 100 "<NotFound '404: Not Found'>".
            raise ServingError('The server at %s has no %s: %s' % (self.base_url, urlsplit(url).path, doc['retmsg']),
                               url=url, http_status=status, retcode=doc.get('retcode'), retmsg=doc.get('retmsg'),
                               reason=ServingError.ENDPOINT_MISSING,
                               hint='This looks like FATE Flow: serving_proxy_url must point at the FATE-Serving '
                                    'serving-proxy HTTP port (8059 by default).')
        if not isinstance(doc, dict) or 'retcode' not in doc:
            text = body_text(response) or '(empty)'
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
