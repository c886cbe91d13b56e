"""Loaded models and service bindings of the serving emulator (FATE-Serving 2.1.x ModelManager).

A model is stored under `tableName + "_" + namespace`; a serviceId maps to such a key. Loading pulls the
model's component files from FATE Flow's transfer endpoint (see loader.py). Everything lives in memory;
with `model.cache.path` set it is also written to `<model.cache.path>/.fate/serving-models.json` and read
back at start, standing in for real serving's local cache.
"""
import base64
import binascii
import json
import logging
import os
import threading
import time

from google.protobuf.message import DecodeError

from fate_sandbox.protos import pipeline_pb2

from . import codes

LOG = logging.getLogger("fate_sandbox.serving")

PIPELINE_KEY = "pipeline.pipeline:Pipeline"
LR_PARAM_NAMES = ("HeteroLogisticRegressionParam", "LogisticRegressionParam")
URL_FILTER_CHARACTERS = ("?", ":", "/", "&")
CACHE_FILE = "serving-models.json"


class ServingError(Exception):
    """A failure that FATE-Serving reports as statusCode/retcode `code` with message `message`."""

    def __init__(self, code, message=""):
        super().__init__(message)
        self.code = code
        self.message = message


def normalise_role(role):
    """FATE-Serving treats every role other than guest as host."""
    return "guest" if role == "guest" else "host"


def model_key(table_name, namespace):
    return "%s_%s" % (table_name, namespace)


class Model:
    __slots__ = ("table_name", "namespace", "role", "party_id", "partners", "weights", "intercept", "header",
                 "timestamp", "resource_address", "data", "fate_version")

    def __init__(self, table_name, namespace, role, party_id):
        self.table_name = table_name
        self.namespace = namespace
        self.role = role
        self.party_id = party_id
        self.partners = {}       # party id -> {"tableName", "namespace", "role", "partId"} (federationModelMap)
        self.weights = {}
        self.intercept = 0.0
        self.header = []
        self.timestamp = int(time.time() * 1000)
        self.resource_address = ""
        self.data = None         # the transfer payload (base64 strings), kept only when persisting
        self.fate_version = ""

    @property
    def key(self):
        return model_key(self.table_name, self.namespace)

    def content(self, service_ids):
        """The model as JSON, for queryModel's `content` (FATE-Serving shows its Model bean there)."""
        role_party = [{"role": self.role, "partId": self.party_id}]
        role_party += [{"role": p["role"], "partId": p["partId"]} for p in self.partners.values()]
        return json.dumps({
            "tableName": self.table_name, "namespace": self.namespace, "timestamp": self.timestamp,
            "role": self.role, "partId": self.party_id, "serviceIds": list(service_ids),
            "federationModelMap": self.partners, "rolePartyMapList": role_party,
            "resourceAdress": self.resource_address,
        })

    def decode(self, data):
        """Take the LR parameters from a transfer payload {key: base64}; ServingError 123 if unusable."""
        if not isinstance(data, dict) or not data:
            raise ServingError(codes.MODEL_INIT_ERROR, codes.MODEL_INIT_MESSAGE)
        raw = {}
        try:
            for key, value in data.items():
                if not isinstance(value, str):
                    raise ValueError("value of %s is not a string" % key)
                raw[key] = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error) as exc:
            LOG.error("model %s: undecodable transfer data: %s", self.key, exc)
            raise ServingError(codes.MODEL_INIT_ERROR, codes.MODEL_INIT_MESSAGE) from exc
        if PIPELINE_KEY not in raw:
            LOG.error("model %s: no %s in transfer data (keys: %s)", self.key, PIPELINE_KEY, sorted(raw))
            raise ServingError(codes.MODEL_INIT_ERROR, codes.MODEL_INIT_MESSAGE)
        try:
            pipeline = pipeline_pb2.Pipeline()
            pipeline.ParseFromString(raw[PIPELINE_KEY])
            self.fate_version = pipeline.fate_version
            for key, blob in raw.items():
                if key.rpartition(":")[2] in LR_PARAM_NAMES:
                    param = pipeline_pb2.LRModelParam()
                    param.ParseFromString(blob)
                    self.weights = dict(param.weight)
                    self.intercept = param.intercept
                    self.header = list(param.header) or sorted(self.weights)
                    break
            else:
                LOG.warning("model %s: no logistic regression parameters; partial scores will be 0", self.key)
        except DecodeError as exc:
            LOG.error("model %s: protobuf decode error: %s", self.key, exc)
            raise ServingError(codes.MODEL_INIT_ERROR, codes.MODEL_INIT_MESSAGE) from exc

    def to_cache(self):
        return {"tableName": self.table_name, "namespace": self.namespace, "role": self.role,
                "partId": self.party_id, "partners": self.partners, "timestamp": self.timestamp,
                "resourceAdress": self.resource_address, "data": self.data}

    @classmethod
    def from_cache(cls, doc):
        model = cls(doc["tableName"], doc["namespace"], doc["role"], doc["partId"])
        model.partners = doc.get("partners") or {}
        model.timestamp = doc.get("timestamp") or model.timestamp
        model.resource_address = doc.get("resourceAdress") or ""
        model.data = doc.get("data")
        model.decode(model.data)
        return model


def _java_npe():
    # FATE-Serving dereferences missing map entries and reports the NullPointerException as
    # SYSTEM_ERROR with its (null, so empty) message.
    return ServingError(codes.SYSTEM_ERROR, "")


def _address_of(url):
    if "//" not in url:
        return ""
    rest = url.split("//", 1)[1]
    return rest.split("/", 1)[0] if "/" in rest else ""


class ModelManager:
    """publishLoad/publishBind/queryModel semantics. Mutations are serialised (real methods are synchronized)."""

    def __init__(self, config, loader, registry=None):
        self.config = config
        self.loader = loader
        self.registry = registry
        self._lock = threading.RLock()
        self._models = {}     # key -> Model, in load order
        self._services = {}   # serviceId -> key

    # -- publishLoad ---------------------------------------------------------------------------------
    def load(self, req):
        local_role = normalise_role(req.local.role)
        local_pid = req.local.partyId
        remote_role = "host" if local_role == "guest" else "guest"
        if local_role not in req.model or remote_role not in req.role:
            raise _java_npe()
        partners = {}
        for pid in req.role[remote_role].partyId:
            if remote_role not in req.model or pid not in req.model[remote_role].roleModelInfo:
                raise _java_npe()
            info = req.model[remote_role].roleModelInfo[pid]
            partners[pid] = {"tableName": info.tableName, "namespace": info.namespace, "role": remote_role,
                             "partId": pid}
        if local_role not in req.role or not req.role[local_role].partyId:
            raise _java_npe()
        infos = req.model[local_role].roleModelInfo
        if local_pid not in infos:
            raise ServingError(codes.SYSTEM_ERROR, "model info is invalid")
        info = infos[local_pid]
        model = Model(info.tableName, info.namespace, local_role, local_pid)
        model.partners = partners

        load_type = req.loadType or "FATEFLOW"
        if load_type in ("FILE", "CACHE"):
            raise ServingError(codes.LOAD_MODEL_ERROR,
                               "load type %s is not supported by the sandbox serving emulator" % load_type)
        if load_type != "FATEFLOW":
            raise ServingError(codes.SYSTEM_ERROR, "No enum constant "
                               "com.webank.ai.fate.serving.model.ModelLoader.LoadModelType." + load_type)
        with self._lock:
            url = self.loader.resolve_url(model.table_name, model.namespace, req.filePath)
            model.resource_address = _address_of(url)
            data = self.loader.fetch(url, model.table_name, model.namespace)
            if data is None:
                raise ServingError(codes.MODEL_INIT_ERROR, codes.MODEL_INIT_MESSAGE)
            model.decode(data)
            if self.config.cache_dir:
                model.data = data
            self._models.pop(model.key, None)
            self._models[model.key] = model
            LOG.info("loaded model %s (role %s, party %s, partners %s) from %s", model.key, model.role,
                     model.party_id, sorted(partners), url)
            self._save()
        return model

    # -- publishBind ---------------------------------------------------------------------------------
    def bind(self, req):
        service_id = req.serviceId
        if not service_id.strip():
            raise ServingError(codes.SYSTEM_ERROR, "param service id is blank")
        if any(ch in service_id for ch in URL_FILTER_CHARACTERS):
            raise ServingError(codes.SYSTEM_ERROR, "Service id contains special characters, "
                               + json.dumps(list(URL_FILTER_CHARACTERS), separators=(",", ":")))
        role = normalise_role(req.local.role)
        if role not in req.model or role not in req.role or not req.role[role].partyId:
            raise _java_npe()
        pid = req.role[role].partyId[0]
        infos = req.model[role].roleModelInfo
        if pid not in infos:
            raise _java_npe()
        key = model_key(infos[pid].tableName, infos[pid].namespace)
        with self._lock:
            if key not in self._models:
                raise ServingError(codes.MODEL_NULL, "model %s is not exist " % key)
            self._services[service_id] = key
            LOG.info("bound service id %s to model %s", service_id, key)
            self._save()
        if self.registry is not None:
            self.registry.register_service(service_id)
        return key

    # -- unload / unbind (not called by FATE Flow; kept simple) ----------------------------------------
    def unload(self, table_name, namespace):
        key = model_key(table_name, namespace)
        with self._lock:
            if self._models.pop(key, None) is None:
                raise ServingError(codes.MODEL_NULL, "model %s is not exist " % key)
            for sid in [s for s, k in self._services.items() if k == key]:
                del self._services[sid]
            self._save()

    def unbind(self, service_id):
        with self._lock:
            if self._services.pop(service_id, None) is None:
                raise ServingError(codes.MODEL_NULL, "service id %s is not bound" % service_id)
            self._save()

    # -- lookups ---------------------------------------------------------------------------------------
    def by_service(self, service_id):
        with self._lock:
            key = self._services.get(service_id)
            return self._models.get(key) if key else None

    def by_table(self, table_name, namespace):
        with self._lock:
            return self._models.get(model_key(table_name, namespace))

    def service_ids(self, key):
        with self._lock:
            return [sid for sid, k in self._services.items() if k == key]

    def query(self, query_type, service_id="", table_name="", namespace=""):
        """[(model, [serviceIds])] like ModelManager.queryModel: 0 all, 1 serviceId substring, 2 table+ns."""
        with self._lock:
            models = list(self._models.values())
            services = dict(self._services)
        out = []
        for model in models:
            sids = [sid for sid, key in services.items() if key == model.key]
            if query_type == 0:
                out.append((model, sids))
            elif query_type == 1:
                needle = service_id.lower()
                if any(needle in sid.lower() for sid in sids):
                    out.append((model, sids))
            elif query_type == 2:
                if model.table_name == table_name and model.namespace == namespace:
                    out.append((model, sids))
        return out

    def counts(self):
        with self._lock:
            return len(self._models), len(self._services)

    def bound_services(self):
        with self._lock:
            return list(self._services)

    # -- local cache -------------------------------------------------------------------------------
    def _save(self):
        cache_dir = self.config.cache_dir
        if not cache_dir:
            return
        doc = {"models": [m.to_cache() for m in self._models.values()], "services": self._services}
        try:
            os.makedirs(cache_dir, exist_ok=True)
            path = os.path.join(cache_dir, CACHE_FILE)
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
        except OSError as exc:
            LOG.error("cannot write the model cache in %s: %s", cache_dir, exc)

    def restore(self):
        """Read the local cache written by a previous run (only with model.cache.path)."""
        cache_dir = self.config.cache_dir
        if not cache_dir:
            return
        path = os.path.join(cache_dir, CACHE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            LOG.error("ignoring unreadable model cache %s: %s", path, exc)
            return
        with self._lock:
            for entry in doc.get("models", []):
                try:
                    model = Model.from_cache(entry)
                except (KeyError, TypeError, ServingError) as exc:
                    LOG.error("ignoring a cached model: %r", exc)
                    continue
                self._models[model.key] = model
            for sid, key in (doc.get("services") or {}).items():
                if key in self._models:
                    self._services[sid] = key
        LOG.info("restored %d model(s) and %d service id(s) from %s", len(self._models), len(self._services), path)
