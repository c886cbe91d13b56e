# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A multipart/form-data body that streams its file part from disk.

PRIVATE to the fate.flow collection: this file is not a public API and may change
in any release without notice.

Model archives can be gigabytes. ``requests``' ``files=`` and Ansible's
``prepare_multipart`` read the whole file into memory (the latter also base64-encodes
it by default), so the body is built here instead: text fields, one binary file part
sent as-is, and a known total length so the request carries a Content-Length.
Iterating the body again (for a retry) re-opens the file.
"""

from __future__ import annotations

import os
import uuid

CHUNK_SIZE = 256 * 1024


def _quote_header_value(value):
    # RFC 7578 4.2: quotes, CR and LF in a name or filename are percent-encoded.
    return value.replace('\\', '\\\\').replace('"', '%22').replace('\r', '%0D').replace('\n', '%0A')


class MultipartFileBody(object):
    """``fields`` (ordered ``[(name, value)]``) then the file at ``path`` as part ``file_field``.

    Iterating yields bytes chunks; ``len()`` is the exact body length.
    """

    def __init__(self, fields, file_field, path, filename=None, boundary=None, chunk_size=CHUNK_SIZE):
        self.boundary = boundary or uuid.uuid4().hex
        self.path = path
        self.chunk_size = chunk_size
        self.fields = [(str(name), '' if value is None else str(value)) for name, value in fields]
        self.filename = filename if filename is not None else os.path.basename(path)
        dash = ('--' + self.boundary).encode('ascii')
        head = []
        for name, value in self.fields:
            head.append(dash + b'\r\n')
            head.append(('Content-Disposition: form-data; name="%s"\r\n\r\n' % _quote_header_value(name)).encode('utf-8'))
            head.append(value.encode('utf-8') + b'\r\n')
        head.append(dash + b'\r\n')
        head.append(('Content-Disposition: form-data; name="%s"; filename="%s"\r\n'
                     % (_quote_header_value(file_field), _quote_header_value(self.filename))).encode('utf-8'))
        head.append(b'Content-Type: application/octet-stream\r\n\r\n')
        self._head = b''.join(head)
        self._tail = b'\r\n' + dash + b'--\r\n'
        self.file_size = os.path.getsize(path)

    @property
    def content_type(self):
        return 'multipart/form-data; boundary=%s' % self.boundary

    def __len__(self):
        return len(self._head) + self.file_size + len(self._tail)

    def __iter__(self):
        return self._chunks()

    def _chunks(self):
        yield self._head
        remaining = self.file_size
        with open(self.path, 'rb') as handle:
            while remaining > 0:
                block = handle.read(min(self.chunk_size, remaining))
                if not block:
                    raise IOError('%s shrank while it was being uploaded (%d bytes missing)' % (self.path, remaining))
                remaining -= len(block)
                yield block
        yield self._tail
