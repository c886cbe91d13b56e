# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The import upload streams from disk: checked against a real local HTTP server."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.fate.flow.plugins.module_utils._flow_client import FlowClient
from ansible_collections.fate.flow.plugins.module_utils._flow_multipart import MultipartFileBody
from ansible_collections.fate.flow.tests.unit.plugins.module_utils.test_flow_client import StubModule

MIB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    """Reads the body in small chunks (so the server itself never holds it), hashes it and keeps
    its first and last bytes; small bodies are kept whole for parsing."""

    def do_POST(self):  # noqa: N802 (http.server naming)
        length = int(self.headers['Content-Length'])
        digest = hashlib.sha256()
        head = b''
        tail = b''
        remaining = length
        kept = bytearray() if length <= MIB else None
        while remaining:
            block = self.rfile.read(min(64 * 1024, remaining))
            if not block:
                break
            remaining -= len(block)
            digest.update(block)
            if len(head) < 4096:
                head += block[:4096 - len(head)]
            tail = (tail + block)[-256:]
            if kept is not None:
                kept += block
        self.server.seen.append(dict(path=self.path, headers=dict(self.headers), length=length,
                                     received=length - remaining, sha256=digest.hexdigest(), head=head, tail=tail,
                                     body=bytes(kept) if kept is not None else None))
        answer = json.dumps({'retcode': 0, 'retmsg': 'success'}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _client(server, **params):
    return FlowClient(StubModule(flow_url='http://127.0.0.1:%d' % server.server_address[1], **params))


def test_body_length_and_reiteration(tmp_path):
    path = tmp_path / 'guest#99#m_v.zip'
    path.write_bytes(b'PK\x03\x04' + bytes(range(256)) * 10)
    body = MultipartFileBody([('role', 'guest'), ('party_id', '99')], 'file', str(path), chunk_size=100)
    first = b''.join(body)
    assert len(first) == len(body)
    assert b''.join(body) == first  # a retry gets the same bytes again
    assert body.content_type == 'multipart/form-data; boundary=%s' % body.boundary


def test_body_parses_as_multipart(tmp_path):
    path = tmp_path / 'guest#99#arbiter-100#guest-99#host-100#model_1.zip'
    content = b'PK\x03\x04' + b'\r\n--not-a-boundary\r\n' + bytes(range(256))
    path.write_bytes(content)
    body = MultipartFileBody([('role', 'guest'), ('model_id', 'a#b "c"')], 'file', str(path))
    raw = b'Content-Type: ' + body.content_type.encode() + b'\r\n\r\n' + b''.join(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = list(message.iter_parts())
    assert [p.get_param('name', header='content-disposition') for p in parts] == ['role', 'model_id', 'file']
    assert parts[0].get_payload(decode=True) == b'guest'
    assert parts[1].get_payload(decode=True) == b'a#b "c"'
    assert parts[2].get_filename() == path.name
    assert parts[2].get_payload(decode=True) == content


def test_quotes_in_names_are_escaped(tmp_path):
    path = tmp_path / 'x.zip'
    path.write_bytes(b'z')
    body = MultipartFileBody([('a"b', 'v')], 'file', str(path), filename='we"ird\r\n.zip')
    head = b''.join(body)
    assert b'name="a%22b"' in head and b'filename="we%22ird%0D%0A.zip"' in head


def test_shrinking_file_is_detected(tmp_path):
    path = tmp_path / 'x.zip'
    path.write_bytes(b'z' * 1000)
    body = MultipartFileBody([], 'file', str(path), chunk_size=100)
    chunks = iter(body)
    next(chunks)
    path.write_bytes(b'z' * 10)
    with pytest.raises(IOError, match='shrank'):
        list(chunks)


def test_small_upload_arrives_intact(server, tmp_path):
    path = tmp_path / 'guest#99#arbiter-100#guest-99#host-100#model_20200901_0001.zip'
    content = bytes(range(256)) * 100
    path.write_bytes(content)
    client = _client(server, app_key='K', secret_key='S')
    client.upload('/model/import', [('role', 'guest'), ('party_id', '99')], str(path))
    seen = server.seen[0]
    assert seen['path'] == '/v1/model/import'
    assert seen['received'] == seen['length']
    assert seen['headers']['Content-Type'].startswith('multipart/form-data; boundary=')
    assert 'Transfer-Encoding' not in seen['headers']
    assert seen['headers']['APP_KEY'] == 'K'
    raw = b'Content-Type: ' + seen['headers']['Content-Type'].encode() + b'\r\n\r\n' + seen['body']
    parts = list(email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw).iter_parts())
    assert parts[-1].get_filename() == path.name
    assert parts[-1].get_payload(decode=True) == content  # binary, not base64


def test_large_upload_streams_without_reading_the_file_whole(server, tmp_path):
    """A 50 MiB (sparse) archive is uploaded while Python allocations stay far below its size."""
    size = 50 * MIB
    path = tmp_path / 'host#100#arbiter-100#guest-99#host-100#model_20200901_0001.zip'
    with open(str(path), 'wb') as handle:
        handle.truncate(size)
        for offset, marker in ((0, b'PK\x03\x04start'), (size // 2, b'middle'), (size - 3, b'end')):
            handle.seek(offset)
            handle.write(marker)
    expected_file = hashlib.sha256()
    with open(str(path), 'rb') as handle:
        for block in iter(lambda: handle.read(MIB), b''):
            expected_file.update(block)

    client = _client(server)
    fields = [('role', 'host'), ('party_id', '100'), ('model_id', 'arbiter-100#guest-99#host-100#model'),
              ('model_version', '20200901_0001')]
    tracemalloc.start()
    try:
        client.upload('/model/import', fields, str(path))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    seen = server.seen[0]
    assert seen['received'] == seen['length'] > size
    assert peak < 8 * MIB, 'upload allocated %.1f MiB for a %d MiB file' % (peak / MIB, size // MIB)
    # The body on the wire is head + the file unchanged + tail.
    body = MultipartFileBody(fields, 'file', str(path),
                             boundary=seen['headers']['Content-Type'].split('boundary=')[1])
    wire = hashlib.sha256()
    for chunk in body:
        wire.update(chunk)
    assert wire.hexdigest() == seen['sha256']
    assert b'filename="%s"' % path.name.encode() in seen['head']
    assert seen['tail'].endswith(b'end\r\n--' + body.boundary.encode() + b'--\r\n')
