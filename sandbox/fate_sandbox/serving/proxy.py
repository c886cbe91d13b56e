"""The serving-proxy HTTP API of the emulator: online inference on the guest, the host's partial score.

Routes (HTTP/1.1, JSON bodies):

* `POST /federation/{version}/inference`, `POST /federation/{version}/batchInference`: the public API
  (FATE-Serving 2.x serving-proxy). The guest looks up the model bound to `head.serviceId`, computes its
  partial logistic-regression score over `body.featureData`, asks every partner host for its partial
  score (sending only `sendToRemoteFeatureData`), and answers `sigmoid(sum)`.
* `POST /unary`: party-to-party call, standing in for serving-proxy's inter-party Packet route. Body:
  `{"header": {"src": {"partyId": g}, "dst": {"partyId": h}, "command": {"name": "federatedInference" |
  "batchFederatedInference"}, "task": {"model": {"tableName": t, "namespace": ns}}}, "body": {"value":
  base64(JSON)}}`; JSON = `{"sendToRemoteFeatureData": {...}, "caseId": ...}` or
  `{"batchDataList": [{"index": i, "sendToRemoteFeatureData": {...}}], "caseId": ...}`. The answer is a
  Packet whose body.value is the host's ReturnResult JSON (`data.score` = the host's partial score, or
  `batchDataList[].data.score`). t/ns are the host's own model (the guest's model[host] entry), so the
  host must have loaded the same model version (its own publishLoad) beforehand.
* `GET /health`: 200 `{"status": "UP", ...}` once the emulator is fully started.

Host features: from `feature.file` (CSV, first column = id, matched against the value of the
`sendToRemoteFeatureData` key named like that column, else any of its values) when configured,
otherwise derived deterministically from `sendToRemoteFeatureData` by `derived_features` below.
"""
import base64
import csv
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fate_sandbox import model_store

from . import codes
from .loader import post_json

LOG = logging.getLogger("fate_sandbox.serving")

MAX_BODY = 16 * 1024 * 1024
SINGLE = "federatedInference"
BATCH = "batchFederatedInference"


# -- host features ------------------------------------------------------------------------------------
def derived_features(send_to_remote, names):
    """Feature values in [-1, 1) derived from the id data: sha256 of canonical JSON + '|' + feature name."""
    key = json.dumps(send_to_remote or {}, sort_keys=True, separators=(",", ":"), default=str)
    out = {}
    for name in names:
        digest = hashlib.sha256(("%s|%s" % (key, name)).encode("utf-8")).digest()
        out[name] = round(int.from_bytes(digest[:8], "big") / float(1 << 64) * 2.0 - 1.0, 6)
    return out


class FeatureFile:
    """feature.file: CSV with a header; first column the id, other columns feature values."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._mtime = None
        self._id_column = ""
        self._rows = {}

    def _refresh(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            self._mtime, self._rows = None, {}
            return
        if mtime == self._mtime:
            return
        rows = {}
        id_column = ""
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader, [])
                if header:
                    id_column = header[0].strip()
                    for record in reader:
                        if not record:
                            continue
                        values = {}
                        for name, value in zip(header[1:], record[1:]):
                            try:
                                values[name.strip()] = float(value)
                            except ValueError:
                                continue
                        rows[record[0].strip()] = values
        except OSError as exc:
            LOG.error("cannot read feature.file %s: %s", self.path, exc)
        self._mtime, self._rows, self._id_column = mtime, rows, id_column

    def lookup(self, send_to_remote):
        with self._lock:
            self._refresh()
            rows, id_column = self._rows, self._id_column
        send_to_remote = send_to_remote or {}
        candidates = []
        if id_column in send_to_remote:
            candidates.append(send_to_remote[id_column])
        candidates += [v for k, v in send_to_remote.items() if k != id_column]
        for value in candidates:
            row = rows.get(str(value))
            if row is not None:
                return row
        return None


# -- packets --------------------------------------------------------------------------------------------
def make_packet(src, dst, command, payload, table_name="", namespace=""):
    return {"header": {"src": {"partyId": str(src), "role": "serving"}, "dst": {"partyId": str(dst), "role": "serving"},
                       "command": {"name": command},
                       "task": {"model": {"tableName": table_name, "namespace": namespace}}},
            "body": {"value": base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")}}


def packet_payload(packet):
    value = ((packet or {}).get("body") or {}).get("value") or ""
    return json.loads(base64.b64decode(value, validate=True).decode("utf-8")) if value else {}


class RemoteError(Exception):
    pass


class InferenceEngine:
    def __init__(self, config, manager, routes):
        self.config = config
        self.manager = manager
        self.routes = routes
        self.features = FeatureFile(config.feature_file) if config.feature_file else None

    # -- guest ----------------------------------------------------------------------------------------
    @staticmethod
    def _result(code, message="", data=None, model=None):
        data = dict(data or {})
        if model is not None:
            data.update({"modelId": model.namespace, "modelVersion": model.table_name, "timestamp": model.timestamp})
        return {"retcode": code, "retmsg": message, "data": data, "flag": 0}

    def _guest_model(self, request):
        service_id = request.get("serviceId")
        if isinstance(service_id, (int, float)) and not isinstance(service_id, bool):
            service_id = str(service_id)
        if not isinstance(service_id, str) or not service_id.strip():
            return None, self._result(codes.PARAM_ERROR, "no service id")
        model = self.manager.by_service(service_id)
        if model is None:
            # FATE-Serving: Preconditions.checkArgument(model != null) -> IllegalArgumentException ->
            # SYSTEM_ERROR with an empty retmsg.
            LOG.warning("can not find model by service id %s", service_id)
            return None, self._result(codes.SYSTEM_ERROR, "")
        return model, None

    def _call_host(self, model, pid, partner, command, payload):
        route = self.routes.lookup(pid)
        if route is None and str(pid) == self.config.party_id:
            route = (self.config.ip, self.config.proxy_port)
        if route is None:
            raise RemoteError("host %s remote error : no route to party %s in route_table.json" % (pid, pid))
        packet = make_packet(model.party_id, pid, command, payload, partner["tableName"], partner["namespace"])
        url = "http://%s:%d/unary" % route
        try:
            status, doc = post_json(url, packet, self.config.inference_timeout)
            if status != 200 or not isinstance(doc, dict):
                raise ValueError("HTTP %s from %s" % (status, url))
            result = packet_payload(doc)
            if not isinstance(result, dict):
                raise ValueError("bad answer from %s" % url)
            return result
        except (OSError, ValueError) as exc:
            raise RemoteError("host %s remote error : %s" % (pid, exc)) from exc

    def inference(self, request):
        model, failure = self._guest_model(request)
        if failure:
            return failure
        features = request.get("featureData") or {}
        send = request.get("sendToRemoteFeatureData") or {}
        if not isinstance(features, dict) or not isinstance(send, dict):
            return self._result(codes.PARAM_ERROR, "request message parse error")
        try:
            total = model_store.lr_score(model.weights, model.intercept, features)
        except (TypeError, ValueError) as exc:
            return self._result(codes.FEATURE_ERROR, "feature data error: %s" % exc, model=model)
        for pid, partner in model.partners.items():
            try:
                result = self._call_host(model, pid, partner, SINGLE, {"sendToRemoteFeatureData": send,
                                                                        "caseId": request.get("caseId", "")})
            except RemoteError as exc:
                LOG.error("%s", exc)
                return self._result(codes.NET_ERROR, str(exc), model=model)
            code = result.get("retcode", codes.SYSTEM_ERROR)
            if code != codes.SUCCESS:
                return self._result(codes.remote_code(code), codes.remote_message(code, result.get("retmsg")),
                                    model=model)
            total += float((result.get("data") or {}).get("score", 0.0))
        return self._result(codes.SUCCESS, "", {"score": model_store.sigmoid(total)}, model=model)

    def batch_inference(self, request):
        model, failure = self._guest_model(request)
        if failure:
            return failure
        items = request.get("batchDataList")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return self._result(codes.PARAM_ERROR, "batch data list is empty or malformed")
        indexes = [item.get("index", n) for n, item in enumerate(items)]
        totals, errors = {}, {}
        for index, item in zip(indexes, items):
            try:
                totals[index] = model_store.lr_score(model.weights, model.intercept, item.get("featureData") or {})
            except (TypeError, ValueError, AttributeError) as exc:
                errors[index] = (codes.FEATURE_ERROR, "feature data error: %s" % exc)
        send_list = [{"index": index, "sendToRemoteFeatureData": item.get("sendToRemoteFeatureData") or {}}
                     for index, item in zip(indexes, items)]
        for pid, partner in model.partners.items():
            try:
                result = self._call_host(model, pid, partner, BATCH, {"batchDataList": send_list,
                                                                       "caseId": request.get("caseId", "")})
            except RemoteError as exc:
                LOG.error("%s", exc)
                return self._result(codes.NET_ERROR, str(exc), model=model)
            code = result.get("retcode", codes.SYSTEM_ERROR)
            if code != codes.SUCCESS:
                return self._result(codes.remote_code(code), codes.remote_message(code, result.get("retmsg")),
                                    model=model)
            for single in result.get("batchDataList") or []:
                index = single.get("index")
                if single.get("retcode", 0) != codes.SUCCESS:
                    host_code = single.get("retcode")
                    errors.setdefault(index, (codes.remote_code(host_code),
                                              codes.remote_message(host_code, single.get("retmsg"))))
                elif index in totals:
                    totals[index] += float((single.get("data") or {}).get("score", 0.0))
        out = []
        for index in indexes:
            if index in errors:
                out.append({"index": index, "retcode": errors[index][0], "retmsg": errors[index][1], "data": {}})
            else:
                out.append({"index": index, "retcode": codes.SUCCESS, "retmsg": "",
                            "data": {"score": model_store.sigmoid(totals[index])}})
        result = self._result(codes.SUCCESS, "", model=model)
        result["batchDataList"] = out
        return result

    # -- host -----------------------------------------------------------------------------------------
    def _host_partial(self, model, send):
        names = model.header or sorted(model.weights)
        if self.features is not None:
            values = self.features.lookup(send)
            if values is None:
                return None
        else:
            values = derived_features(send, names)
        return model_store.lr_score(model.weights, model.intercept, values)

    def host(self, packet):
        header = packet.get("header") or {}
        command = (header.get("command") or {}).get("name", "")
        info = (header.get("task") or {}).get("model") or {}
        payload = packet_payload(packet)
        model = self.manager.by_table(info.get("tableName", ""), info.get("namespace", ""))
        if command not in (SINGLE, BATCH):
            result = {"retcode": 125, "retmsg": "unsupported command %s" % command}
        elif model is None:
            LOG.error("table name %s namespace %s is not exist", info.get("tableName"), info.get("namespace"))
            result = {"retcode": codes.MODEL_NULL, "retmsg": codes.HOST_MODEL_NULL_MESSAGE}
        elif command == SINGLE:
            partial = self._host_partial(model, payload.get("sendToRemoteFeatureData") or {})
            if partial is None:
                result = {"retcode": codes.HOST_FEATURE_NOT_EXIST, "retmsg": codes.HOST_ADAPTOR_ERROR_MESSAGE}
            else:
                result = {"retcode": codes.SUCCESS, "retmsg": "", "data": {"score": partial}, "flag": 0}
        else:
            singles = []
            for item in payload.get("batchDataList") or []:
                partial = self._host_partial(model, item.get("sendToRemoteFeatureData") or {})
                if partial is None:
                    singles.append({"index": item.get("index"), "retcode": codes.HOST_FEATURE_NOT_EXIST,
                                    "retmsg": codes.HOST_ADAPTOR_ERROR_MESSAGE, "data": {}})
                else:
                    singles.append({"index": item.get("index"), "retcode": codes.SUCCESS, "retmsg": "",
                                    "data": {"score": partial}})
            result = {"retcode": codes.SUCCESS, "retmsg": "", "batchDataList": singles}
        src = (header.get("src") or {}).get("partyId", "")
        dst = (header.get("dst") or {}).get("partyId", self.config.party_id)
        return make_packet(dst, src, command, result, info.get("tableName", ""), info.get("namespace", ""))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fate-serving-sandbox"
    timeout = 60   # idle keep-alive connections are closed after this

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        LOG.debug("proxy %s - %s", self.address_string(), format % args)

    def _send(self, status, doc):
        body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status, error, message=""):
        self._send(status, {"timestamp": int(time.time() * 1000), "status": status, "error": error,
                            "message": message, "path": self.path})

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        length = int(length)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length)

    def do_GET(self):
        if self.path.split("?", 1)[0].rstrip("/") == "/health":
            models, services = self.server.engine.manager.counts()
            self._send(200, {"status": "UP", "partyId": self.server.engine.config.party_id,
                             "models": models, "services": services})
        elif self._route() is not None:
            self._error(405, "Method Not Allowed")
        else:
            self._error(404, "Not Found")

    do_HEAD = do_GET

    def _route(self):
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[0] == "federation":
            return ("federation", parts[2])
        if parts == ["unary"]:
            return ("unary", None)
        return None

    def do_POST(self):
        route = self._route()
        if route is None:
            self._error(404, "Not Found")
            return
        try:
            raw = self._read_body()
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError) as exc:
            self.close_connection = True
            if route[0] == "unary":
                self._send(200, make_packet("", "", "", {"retcode": codes.PROXY_PARAM_ERROR,
                                                         "retmsg": "invalid http param"}))
            else:
                self._error(500, "Internal Server Error", "invalid request body: %s" % exc)
            return
        engine = self.server.engine
        try:
            if route[0] == "unary":
                if not isinstance(doc, dict):
                    self._send(200, make_packet("", "", "", {"retcode": codes.PROXY_PARAM_ERROR,
                                                             "retmsg": "invalid http param"}))
                    return
                self._send(200, engine.host(doc))
                return
            if not isinstance(doc, dict):
                self._error(500, "Internal Server Error", "request body is not a JSON object")
                return
            head = doc.get("head") if isinstance(doc.get("head"), dict) else {}
            body = doc.get("body") if isinstance(doc.get("body"), dict) else {}
            request = {"caseId": head.get("caseId") or uuid.uuid4().hex}
            request.update(head)
            request.update(body)
            call = route[1]
            if call == "inference":
                result = engine.inference(request)
            elif call == "batchInference":
                result = engine.batch_inference(request)
            else:
                result = {"retcode": codes.PARAM_ERROR, "retmsg": "invalid call name"}
            LOG.info("%s serviceId=%s caseId=%s -> retcode %s %s", call, request.get("serviceId"),
                     request.get("caseId"), result.get("retcode"), result.get("retmsg", ""))
            self._send(200, result)
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("proxy request %s failed", self.path)
            self._error(500, "Internal Server Error", str(exc))


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, engine):
        self.engine = engine
        super().__init__(address, _Handler)
