# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP plumbing shared by the fate.flow collection's clients (FATE Flow, FATE-Serving serving-proxy).

PRIVATE to the fate.flow collection: this file is not a public API and may change
in any release without notice. Only the collection's own modules may import it.

* ``transport_argument_spec()``: the timeout, retry and TLS options every client takes.
* ``HttpError``: the base of each client's exception (message with hint, structured ``result()``);
  ``fail_from_error()`` turns one into a structured ``fail_json``.
* ``HttpClient``: the base of each client: TLS session (validate_certs, ca_path, client certificate),
  one request sent without redirects, and the retry loop with exponential backoff. Subclasses name
  the service and decide what may be resent.
* ``short_text()``, ``connection_problem()``, ``never_connected()``, ``json_body()``: reading answers
  and connection failures.
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

try:
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
except ImportError:
    requests = None  # the clients refuse to start without it (HAS_REQUESTS)
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

# FATE Flow 1.9+ answers an unknown path with HTTP 200 and retcode 100 "<NotFound '404: Not Found'>".
FLOW_NOT_FOUND_RE = re.compile(r"<(NotFound|MethodNotAllowed) '40[45]")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")

TLS_HINT = 'Check ca_path, client_cert/client_key, or set validate_certs=false for a test server.'
# AnsibleModule required_by for the TLS options: a key file needs its certificate.
TLS_REQUIRED_BY = {'client_key': 'client_cert'}


def transport_argument_spec():
    """The timeout, retry and TLS options (a new dict each call)."""
    return dict(
        timeout=dict(type='int', default=30),
        retries=dict(type='int', default=3),
        retry_delay=dict(type='float', default=1.0),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class HttpError(Exception):
    """Anything that went wrong talking to an HTTP service, with the context to act on it.

    Subclasses list the keys ``result()`` reports: ``WHERE_KEYS`` first (where the request went),
    then http_status, retcode, retmsg and reason, then ``OPTIONAL_KEYS`` that are not None.
    """

    TRANSPORT = 'transport'          # no HTTP answer (connection refused, DNS, TLS, timeout)
    HTTP = 'http'                    # an HTTP status that is not 200
    NOT_JSON = 'not_json'            # the body is not the service's JSON answer
    ENDPOINT_MISSING = 'endpoint_missing'  # the server has no such endpoint
    RETCODE = 'retcode'              # the answer's retcode is not 0

    DEFAULT_REASON = TRANSPORT
    # A message that ends with one of these gets no extra '.' before the hint.
    END_MARKS = '.!?'
    WHERE_KEYS = ()
    OPTIONAL_KEYS = ()

    def __init__(self, msg, http_status=None, retcode=None, retmsg=None, reason=None, hint=None):
        self.msg = msg
        self.http_status = http_status
        self.retcode = retcode
        self.retmsg = retmsg
        self.reason = reason or self.DEFAULT_REASON
        self.hint = hint
        super(HttpError, self).__init__(self.message)

    @property
    def message(self):
        """The message followed by the hint (what to do), unless the message already says it."""
        text = self.msg.strip()
        if self.hint and self.hint not in text:
            if text and text[-1] not in self.END_MARKS:
                text += '.'
            text = '%s %s' % (text, self.hint)
        return text

    def result(self):
        """The keys a module adds to fail_json (never headers or credentials)."""
        out = dict((key, getattr(self, key)) for key in self.WHERE_KEYS)
        out.update(http_status=self.http_status, retcode=self.retcode, retmsg=self.retmsg, reason=self.reason)
        for key in self.OPTIONAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def fail_from_error(module, error, **extra):
    """fail_json from an HttpError (FlowError, ServingError), with its structured keys."""
    result = error.result()
    result.update(extra)
    module.fail_json(msg=error.message, **result)


# ---------------------------------------------------------------------------
# Reading answers and failures
# ---------------------------------------------------------------------------

def short_text(text, limit=400):
    """A one-line excerpt of a non-JSON body (HTML tags dropped)."""
    text = re.sub(r'<[^>]+>', ' ', text or '')
    text = re.sub(r'\s+', ' ', text).strip()
    return text if len(text) <= limit else text[:limit] + '...'


def body_text(response):
    """The one-line excerpt of a response body."""
    return short_text(response.content.decode('utf-8', 'replace'))


def json_body(response):
    """The decoded JSON of a response body, or None when it is not JSON."""
    try:
        return json.loads(response.content.decode('utf-8'))
    except (ValueError, UnicodeDecodeError):
        return None


def never_connected(exc):
    """True when a requests ConnectionError happened before the request could be sent.

    requests wraps both "could not connect" (urllib3 MaxRetryError whose reason is a
    NewConnectionError or ConnectTimeoutError) and "connection broke while the request was
    sent or answered" (urllib3 ProtocolError) in the same ConnectionError; only the first
    is safe to retry for a request that changes something.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, 'reason', None), (NewConnectionError, ConnectTimeoutError))


def connection_problem(exc):
    """The useful part of a requests connection error ("[Errno 111] Connection refused")."""
    text = str(exc)
    match = _ERRNO_RE.search(text)
    return match.group(0).strip() if match else short_text(text, 200)


# ---------------------------------------------------------------------------
# The client base
# ---------------------------------------------------------------------------

class Call(object):
    """One logical request of the retry loop: what the hooks need to word a failure."""

    def __init__(self, method, path, where, read_only, retry_statuses):
        self.method = method
        self.path = path                      # as named in warnings, e.g. /v1/model/query
        self.where = where                    # error keywords naming the request, e.g. {'endpoint': path}
        self.read_only = read_only            # resending cannot do anything twice
        self.retry_statuses = retry_statuses  # HTTP statuses that are resent


class HttpClient(object):
    """Transport shared by the collection's HTTP clients.

    A subclass sets ``URL_OPTION`` (the module option with the server's URL), ``BAD_URL`` (the
    message when it is not an http(s) URL, with %r for the URL), ``URL_SUFFIX`` (an API path a
    user may have added to the URL), ``SERVICE`` (how messages name the server, "FATE Flow"),
    ``LABEL`` (how retry warnings name it), ``ERROR`` (its HttpError subclass) and
    ``UNREACHABLE_HINT``, checks that requests is there before calling this constructor, and may
    override the hooks that decide what a connection failure or a timeout means for one call
    (``_connection_failed``, ``_timed_out``, ``_gave_up``).
    """

    URL_OPTION = 'url'
    BAD_URL = 'url must be an http:// or https:// URL; got %r'
    URL_SUFFIX = ''
    SERVICE = 'the server'
    LABEL = 'server'
    ERROR = HttpError
    UNREACHABLE_HINT = None

    def __init__(self, module, session=None):
        """Bind to ``module``'s options; ``session``: a ready requests session (else one with the TLS options)."""
        self.module = module
        params = module.params
        self.base_url = self._base_url(params[self.URL_OPTION])
        self._init_transport(params, session)

    def _base_url(self, url):
        url = (url or '').strip()
        if not self._valid_url(url):
            self.module.fail_json(msg=self.BAD_URL % url)
        url = url.rstrip('/')
        if self.URL_SUFFIX and url.endswith(self.URL_SUFFIX):
            url = url[:-len(self.URL_SUFFIX)]
        return url

    @staticmethod
    def _valid_url(url):
        parts = urlsplit(url)
        return parts.scheme in ('http', 'https') and bool(parts.netloc)

    def _init_transport(self, params, session=None):
        """Timeout, retries and the TLS session from the module parameters (``session``: a ready one)."""
        self.timeout = params.get('timeout') or 30
        self.retries = max(0, params.get('retries') or 0)
        self.retry_delay = max(0.0, params.get('retry_delay') or 0.0)
        self.verify = self._verify_setting(params)
        self.session = session or self._new_session(params)

    @staticmethod
    def _verify_setting(params):
        if params.get('validate_certs') is False:
            return False
        return params.get('ca_path') or True

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

    def _service_at(self):
        """"FATE Flow at <url>" / "The serving-proxy at <url>", to start a sentence."""
        return '%s%s at %s' % (self.SERVICE[:1].upper(), self.SERVICE[1:], self.base_url)

    def _send_request(self, method, url, body, headers, extra_headers=None):
        """One HTTP request (no retries, no redirects); ``extra_headers(prepared)`` adds headers to this attempt."""
        prepared = self.session.prepare_request(requests.Request(method, url, data=body, headers=headers))
        if extra_headers is not None:
            prepared.headers.update(extra_headers(prepared))
        # verify is passed explicitly so that REQUESTS_CA_BUNDLE cannot re-enable verification
        # after validate_certs=false (requests merges the environment over the session).
        settings = self.session.merge_environment_settings(prepared.url, {}, None, self.verify, None)
        return self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)

    def _retry_loop(self, send, call):
        """``send()`` until it answers with a status not in ``call.retry_statuses`` or the retries run out.

        Waits ``retry_delay * 2 ** n`` seconds before resend n+1, with a warning each time. Returns
        the last response (its ``fate_attempts`` says how many times it was sent); raises ERROR when
        there is none. TLS errors are never resent; connection failures and timeouts as the hooks say.
        """
        attempt = 0
        while True:
            problem = None
            response = None
            try:
                response = send()
            except requests.exceptions.SSLError as exc:
                raise self.ERROR('TLS error talking to %s at %s: %s' % (self.SERVICE, self.base_url, exc),
                                 reason=self.ERROR.TRANSPORT, hint=TLS_HINT, **call.where)
            except requests.exceptions.ConnectionError as exc:
                problem = self._connection_failed(exc, call)
            except requests.exceptions.Timeout as exc:
                problem = self._timed_out(exc, call)
            except requests.exceptions.RequestException as exc:
                raise self.ERROR('request to %s at %s failed: %s' % (self.SERVICE, self.base_url, exc),
                                 reason=self.ERROR.TRANSPORT, **call.where)
            if response is not None:
                response.fate_attempts = attempt + 1
                if response.status_code not in call.retry_statuses:
                    return response
                problem = 'HTTP %s' % response.status_code
            if attempt >= self.retries:
                if response is not None:
                    return response
                raise self._gave_up(problem, attempt + 1, call)
            delay = self.retry_delay * (2 ** attempt)
            attempt += 1
            self.module.warn('%s %s: %s; retrying in %.1f s (attempt %d of %d)'
                             % (self.LABEL, call.path, problem, delay, attempt + 1, self.retries + 1))
            time.sleep(delay)

    # -- hooks ---------------------------------------------------------------------------
    def _connection_failed(self, exc, call):
        """The problem to retry after a ConnectionError (raise ERROR instead to stop)."""
        if never_connected(exc):
            return 'could not connect (%s)' % connection_problem(exc)
        return 'the connection broke (%s)' % connection_problem(exc)

    def _timed_out(self, exc, call):
        """The problem to retry after a Timeout (raise ERROR instead to stop)."""
        return 'no answer within %s seconds' % self.timeout

    def _gave_up(self, problem, attempts, call):
        """The ERROR once the last attempt got no answer."""
        return self.ERROR('%s is unreachable: %s (after %d attempt(s)).' % (self._service_at(), problem, attempts),
                          reason=self.ERROR.TRANSPORT, hint=self.UNREACHABLE_HINT, **call.where)
