# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """Connection options shared by every fate.flow module (fate.flow.connection)."""

    DOCUMENTATION = r'''
options:
  flow_url:
    description:
      - Base URL of the FATE Flow HTTP API, for example V(http://127.0.0.1:9380).
      - The modules append C(/v1/...) themselves; a trailing C(/v1) is accepted and ignored.
      - If not set, the value of the E(FATE_FLOW_URL) environment variable is used.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait for FATE Flow to answer one HTTP request.
      - Migration, deploy and load wait for every party, so give them more than the FATE Flow
        C(remote_request_timeout) (30 s by default).
      - Between 1 and 86400.
    type: int
    default: 30
  retries:
    description:
      - How many times a request is sent again after a connection error (nothing was sent) or an HTTP 502 or 503
        answer; read-only requests (version detection, model queries) also after an HTTP 500 or 504 answer, a read
        timeout or a connection that broke after the request was sent.
      - Answers from FATE Flow itself (any C(retcode)) and other HTTP statuses are never retried, and neither is a
        migrate, deploy, import, load or bind request after an HTTP 500 or 504, a read timeout or a connection that
        broke after it was sent, so an operation is not submitted twice. The error then says that it was not
        resent; a rerun of the task checks what the server did.
      - Between 0 and 100.
    type: int
    default: 3
  retry_delay:
    description:
      - Seconds before the first retry; each further retry waits twice as long as the previous one.
      - Between 0 and 3600.
    type: float
    default: 1.0
  validate_certs:
    description:
      - Verify the TLS certificate of an V(https://) O(flow_url).
      - Only set to V(false) for test servers with self-signed certificates.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle (PEM) to verify the FATE Flow certificate with, instead of the system's.
    type: path
  client_cert:
    description:
      - A PEM client certificate for FATE Flow deployments behind mutual TLS.
      - May also hold the private key; otherwise set O(client_key).
    type: path
  client_key:
    description:
      - The PEM private key of O(client_cert).
    type: path
  app_key:
    description:
      - The application key for FATE Flow request signing (C(http_app_key) in FATE Flow 1.7 and 1.8,
        client authentication in 1.9+). Set together with O(secret_key).
      - Requests are signed the way the FATE C(flow) client signs them (headers C(TIMESTAMP), C(NONCE),
        C(APP_KEY) and C(SIGNATURE)). FATE Flow releases without signing ignore the headers.
      - If not set, the value of the E(FATE_FLOW_APP_KEY) environment variable is used.
    type: str
  secret_key:
    description:
      - The secret key for request signing. It never appears in results or logs.
      - If not set, the value of the E(FATE_FLOW_SECRET_KEY) environment variable is used.
    type: str
requirements:
  - 'requests (Python library) on the host that runs the module, usually the controller or execution environment
    (C(delegate_to: localhost)).'
notes:
  - The FATE Flow release is detected once per task (C(POST /v1/server/version/get), falling back to
    C(POST /v1/version/get)). FATE Flow 1.4 to 1.11 are supported; FATE Flow 2.x is refused.
  - 'All fate.flow modules belong to the action group C(fate.flow.fate_flow), so the connection options can be set
    once with C(module_defaults: {group/fate.flow.fate_flow: {flow_url: ...}}).'
  - A failure returns the keys C(endpoint), C(http_status), C(retcode), C(retmsg) and C(reason) (null when unknown),
    and C(party) or C(parties) when specific parties failed. Headers and credentials are never returned.
'''
