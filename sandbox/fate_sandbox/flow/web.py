"""The HTTP layer of the FATE Flow emulator: what Flask/Werkzeug put on the wire for FATE Flow 1.x.

* JSON bodies as Flask's jsonify writes them: keys sorted, compact, trailing newline.
* G0-G3 (Flask 1.0, Werkzeug 0.15): request JSON only with Content-Type application/json,
  unknown paths and wrong methods answer Werkzeug's HTML pages, unhandled errors str(e).
* G4 (Flask 2.0): any body that parses is JSON, every error (404/405 included) is HTTP 200
  retcode 100 with repr(e).
* Uploads are streamed to disk: a multipart body is never held whole in memory.
"""
import json
import os
import re
import tempfile
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HTML = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>{code} {name}</title>\n'
         '<h1>{name}</h1>\n<p>{text}</p>\n')
_HTTP_TEXT = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    404: ("Not Found", "The requested URL was not found on the server. If you entered the URL manually please "
                       "check your spelling and try again."),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    500: ("Internal Server Error", "The server encountered an internal error and was unable to complete your "
                                   "request. Either the server is overloaded or there is an error in the "
                                   "application."),
}
CHUNK = 1 << 16


class HTTPError(Exception):
    """A Werkzeug HTTPException: NotFound, MethodNotAllowed, BadRequest."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code
        self.name = _HTTP_TEXT[code][0]

    def __repr__(self):
        return "<%s '%d: %s'>" % (self.name.replace(" ", ""), self.code, self.name)


class Response:
    def __init__(self, status=200, body=b"", content_type="application/json", headers=None, file_path=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
        self.file_path = file_path


def jsonify(obj, status=200):
    """flask.jsonify: sorted keys, compact separators, newline."""
    return Response(status, (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode())


def raw_json(obj, status=200):
    """A json.dumps body with the keys in the order given (handlers that build their answer by hand)."""
    return Response(status, json.dumps(obj).encode())


def get_json_result(retcode=0, retmsg="success", data=None, job_id=None, meta=None):
    result = {"retcode": retcode, "retmsg": retmsg, "data": data, "jobId": job_id, "meta": meta}
    return jsonify({k: v for k, v in result.items() if v is not None or k == "retcode"})


def error_response(code, retmsg):
    """FATE's error_response: HTTP status = code, body retmsg then retcode."""
    return Response(code, json.dumps({"retmsg": retmsg, "retcode": code}).encode())


def html_error(code):
    name, text = _HTTP_TEXT[code]
    return Response(code, _HTML.format(code=code, name=name, text=text).encode(), "text/html; charset=utf-8")


class UploadedFile:
    def __init__(self, filename, path, size):
        self.filename = filename
        self.path = path
        self.size = size


class Request:
    def __init__(self, method, path, headers, body, form, files, content_type, remote):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body              # raw bytes (empty for multipart)
        self.form = form              # {name: value}; repeated names keep the first text value
        self.files = files            # {name: UploadedFile}
        self.content_type = content_type
        self.remote = remote
        self.json = None

    def cleanup(self):
        for upload in self.files.values():
            if os.path.exists(upload.path):
                os.unlink(upload.path)


def _parse_disposition(value):
    params = {}
    for match in re.finditer(r';\s*([\w*]+)="((?:[^"\\]|\\.)*)"|;\s*([\w*]+)=([^;]*)', value):
        if match.group(1):
            params[match.group(1).lower()] = match.group(2)
        else:
            params[match.group(3).lower()] = match.group(4).strip()
    return params


class _Reader:
    """Reads at most `length` bytes of the request body, in chunks."""

    def __init__(self, rfile, length):
        self.rfile = rfile
        self.left = length

    def read(self, size=CHUNK):
        if self.left <= 0:
            return b""
        data = self.rfile.read(min(size, self.left))
        self.left -= len(data)
        if not data:
            self.left = 0
        return data


def parse_multipart(reader, boundary, upload_dir):
    """Stream a multipart/form-data body: text parts into a dict, file parts into files on disk."""
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    form, files = {}, {}
    buf = b""
    # Skip the preamble up to the first delimiter.
    while delimiter not in buf:
        data = reader.read()
        if not data:
            return form, files
        buf += data
    buf = buf[buf.index(delimiter) + len(delimiter):]
    while True:
        while len(buf) < 2:
            data = reader.read()
            if not data:
                return form, files
            buf += data
        if buf.startswith(b"--"):
            return form, files
        while b"\r\n\r\n" not in buf:
            data = reader.read()
            if not data:
                return form, files
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        headers = {}
        for line in head.split(b"\r\n"):
            if b":" in line:
                key, value = line.split(b":", 1)
                headers[key.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
        params = _parse_disposition(headers.get("content-disposition", ""))
        name = params.get("name", "")
        if "filename" in params:
            fd, path = tempfile.mkstemp(dir=upload_dir, prefix=".upload-")
            out = os.fdopen(fd, "wb")
            sink, size = out, 0
        else:
            out, sink, size = None, [], 0
        while True:
            idx = buf.find(separator)
            if idx >= 0:
                part, buf = buf[:idx], buf[idx + len(separator):]
                size += len(part)
                sink.write(part) if out else sink.append(part)
                break
            keep = len(separator) - 1
            if len(buf) > keep:
                part, buf = buf[:-keep], buf[-keep:]
                size += len(part)
                sink.write(part) if out else sink.append(part)
            data = reader.read()
            if not data:
                break
            buf += data
        if out:
            out.close()
            files.setdefault(name, UploadedFile(params["filename"], path, size))
            if name in files and files[name].path != path:
                os.unlink(path)
        else:
            form.setdefault(name, b"".join(sink).decode("utf-8", "replace"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_handler(app):
    """A request handler class bound to `app` (an object with dispatch(request) -> Response)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = app.server_version
        sys_version = ""

        def log_message(self, fmt, *args):  # access log goes through the app
            pass

        def version_string(self):
            return self.server_version

        def _handle(self):
            raw_path = self.path
            path = urllib.parse.urlsplit(raw_path).path
            ctype = self.headers.get("Content-Type", "")
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body_reader = _ChunkedReader(self.rfile) if app.accepts_chunked else _Reader(self.rfile, 0)
            else:
                body_reader = _Reader(self.rfile, length)
            body, form, files = b"", {}, {}
            mime = ctype.split(";")[0].strip().lower()
            if mime == "multipart/form-data" and "boundary=" in ctype:
                boundary = _parse_disposition(ctype).get("boundary", "").encode()
                form, files = parse_multipart(body_reader, boundary, app.upload_dir())
            else:
                chunks = []
                while True:
                    data = body_reader.read()
                    if not data:
                        break
                    chunks.append(data)
                body = b"".join(chunks)
                if mime == "application/x-www-form-urlencoded":
                    form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
            # Drain what the parser left, so keep-alive stays in step.
            while body_reader.read():
                pass
            request = Request(self.command, path, self.headers, body, form, files, ctype, self.client_address[0])
            try:
                response = app.dispatch(request)
            finally:
                request.cleanup()
            self._send(response)

        def _send(self, response):
            reason = _HTTP_TEXT.get(response.status, ("OK" if response.status == 200 else "",))[0]
            if response.status == 200:
                reason = "OK"
            elif response.status == 210:
                reason = "UNKNOWN"
            self.send_response(response.status, reason)
            self.send_header("Content-Type", response.content_type)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if response.file_path:
                size = os.path.getsize(response.file_path)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command != "HEAD":
                    with open(response.file_path, "rb") as f:
                        while True:
                            data = f.read(CHUNK)
                            if not data:
                                break
                            self.wfile.write(data)
            else:
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


class _ChunkedReader:
    """Transfer-Encoding: chunked request bodies (Werkzeug 2.0's dev server accepts them; 0.15's does not)."""

    def __init__(self, rfile):
        self.rfile = rfile
        self.left = 0
        self.done = False

    def read(self, size=CHUNK):
        if self.done:
            return b""
        if self.left == 0:
            line = self.rfile.readline()
            self.left = int(line.split(b";")[0].strip() or b"0", 16)
            if self.left == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
        data = self.rfile.read(min(size, self.left))
        self.left -= len(data)
        if self.left == 0:
            self.rfile.readline()
        return data
