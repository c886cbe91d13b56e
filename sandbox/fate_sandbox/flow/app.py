"""FATE Flow 1.x model-management API, as ../shared/fate-flow-contract.md describes it.

Section numbers in comments (§2.1 ...) point into that contract. Behaviour that differs between
FATE versions is selected by the profile's named flags (profiles.py), never by version numbers.
"""
import base64
import copy
import datetime
import hmac
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.parse
import uuid

import requests

from fate_sandbox import model_store as ms
from fate_sandbox.flow import faults, web
from fate_sandbox.flow.db import ModelTable
from fate_sandbox.protos import model_service_pb2, model_service_pb2_grpc

log = logging.getLogger("fate_flow.stat")
_counter = itertools.count()
_INTERNAL = ("/v1/model/migrate/do", "/v1/model/load/do", "/v1/model/deploy/do")


class Answer(Exception):
    """Stop a handler with a ready response (validate_request, error_response...)."""

    def __init__(self, response):
        super().__init__("answer")
        self.response = response


def remote_request_timeout():
    """Seconds a federated call waits: FATE's remote_request_timeout (30000 ms by default).

    FATE_SANDBOX_REMOTE_REQUEST_TIMEOUT (seconds) raises it for benches that migrate gigabyte models, as an
    operator would raise remote_request_timeout in job_default_config.yaml."""
    try:
        return max(1.0, float(os.environ.get("FATE_SANDBOX_REMOTE_REQUEST_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def generate_job_id():
    return "%s%d" % (datetime.datetime.now().strftime("%Y%m%d%H%M%S%f"), next(_counter) % 10)


class FlowApp:
    def __init__(self, home, profile, config, registry=None):
        self.home = home
        self.profile = profile
        self.config = config
        self.registry = registry
        self.server_version = "Werkzeug/2.0.3 Python/3.8.13" if profile.flask2 else "Werkzeug/0.15.3 Python/3.6.5"
        self.accepts_chunked = profile.flask2
        self.temp_dir = os.path.join(home, profile.temp_dir)
        os.makedirs(self.temp_dir, exist_ok=True)
        self.db = ModelTable(os.path.join(home, profile.db_file))
        self.model_locks = {}
        self._locks_guard = threading.Lock()
        self.routes = self._routes()

    # ------------------------------------------------------------------ plumbing
    def _routes(self):
        p = self.profile
        routes = [
            ("POST", "/v1/model/load", self.load),
            ("POST", "/v1/model/load/do", self.load_do),
            ("POST", "/v1/model/bind", self.bind),
            ("POST", "/v1/model/transfer", self.transfer),
        ]
        if p.has_migrate:
            routes += [("POST", "/v1/model/migrate", self.migrate), ("POST", "/v1/model/migrate/do", self.migrate_do)]
        if p.has_transfer_path:
            routes.append(("POST", r"/v1/model/transfer/(?P<party_model_id>[^/]+)/(?P<model_version>[^/]+)",
                           self.transfer))
        if p.has_query:
            routes.append(("POST", "/v1/model/query", self.query))
        if p.has_deploy:
            routes += [("POST", "/v1/model/deploy", self.deploy), ("POST", "/v1/model/deploy/do", self.deploy_do)]
        routes.append(("GET|POST", r"/v1/model/(?P<operation>[^/]+)", self.operate))
        if p.has_version_get:
            routes.append(("POST", "/v1/version/get", self.version_get))
        if p.has_server_version:
            routes += [("POST", "/v1/server/version/get", self.server_version_get),
                       ("POST", "/v1/server/reload", self.server_reload)]
        slash = "/?" if p.blueprint_app else ""
        return [(methods.split("|"), re.compile("^%s%s$" % (pattern, slash)), handler)
                for methods, pattern, handler in routes]

    def upload_dir(self):
        return self.temp_dir

    def dispatch(self, req):
        started = time.time()
        try:
            rule = faults.take(self.home, req.path)     # tests inject faults per party (faults.py)
            response = faults.apply(self.home, rule) if rule else None
            if response is None:
                response = self._dispatch(req)
        except Exception as exc:  # pylint: disable=broad-except
            log.exception("unhandled error on %s", req.path)
            response = web.get_json_result(100, repr(exc) if self.profile.flask2 else str(exc))
        log.info("%s %s %s %s %s %.0fms", req.remote, req.method, req.path, response.status,
                 _summary(req), (time.time() - started) * 1000)
        return response

    def _dispatch(self, req):
        allowed = False
        for methods, pattern, handler in self.routes:
            match = pattern.match(req.path)
            if not match:
                continue
            if req.method not in methods:
                allowed = True
                continue
            return self._call(req, handler, match.groupdict())
        error = web.HTTPError(405 if allowed else 404)
        if self.profile.flask2:
            return web.get_json_result(100, repr(error))
        return web.html_error(error.code)

    def _call(self, req, handler, kwargs):
        denied = self._before_request(req)
        if denied:
            return denied
        req.json = self._parse_json(req)
        try:
            return handler(req, **kwargs)
        except Answer as answer:
            return answer.response
        except web.HTTPError as exc:
            return web.get_json_result(100, repr(exc)) if self.profile.flask2 else web.html_error(exc.code)
        except Exception as exc:  # pylint: disable=broad-except
            log.info("request failed: %r", exc)
            if self.profile.flask2:
                return web.get_json_result(100, repr(exc))
            data = exc.args[1] if self.profile.blueprint_app and len(exc.args) == 2 else None
            return web.get_json_result(100, str(exc), data=data)

    def _parse_json(self, req):
        mime = req.content_type.split(";")[0].strip().lower()
        if self.profile.flask2:           # Request.json = get_json(force=True, silent=True)
            try:
                return json.loads(req.body) if req.body else None
            except ValueError:
                return None
        if mime != "application/json":
            return None
        try:
            return json.loads(req.body)
        except ValueError as exc:
            raise web.HTTPError(400) from exc

    def _before_request(self, req):
        """Request signing when an app key and secret are configured (1.7+, §1.3)."""
        cfg = self.config
        if not (cfg.app_key and cfg.secret_key) or req.path.rstrip("/") in _INTERNAL:
            return None
        headers = {k: req.headers.get(k) for k in ("TIMESTAMP", "NONCE", "APP_KEY", "SIGNATURE")}
        if not all(headers.values()):
            return web.error_response(401, "Unauthorized")
        if headers["APP_KEY"] != cfg.app_key:
            return web.error_response(401, "Unauthorized")
        try:
            skew = abs(int(headers["TIMESTAMP"]) - time.time() * 1000)
        except ValueError:
            return web.error_response(401, "Unauthorized")
        if skew > 60000:
            return web.error_response(425, "Too Early")
        mime = req.content_type.split(";")[0].strip().lower()
        body = req.body if req.body and mime == "application/json" else b""
        form = b""
        if req.form and mime == "multipart/form-data":
            form = urllib.parse.urlencode(sorted(req.form.items()), quote_via=urllib.parse.quote,
                                          safe="-._~").encode()
        message = b"\n".join([headers["TIMESTAMP"].encode(), headers["NONCE"].encode(), headers["APP_KEY"].encode(),
                              req.path.encode(), body, form])
        expected = base64.b64encode(hmac.new(cfg.secret_key.encode(), message, "sha1").digest()).decode()
        if not hmac.compare_digest(expected, headers["SIGNATURE"]):
            return web.error_response(403, "Forbidden")
        return None

    def _fields(self, req):
        if req.json is not None:
            return req.json
        return dict(req.form)

    def validate(self, data, *names):
        """validate_request (G3+: retcode 101) or check_config (<=1.6: an exception, retcode 100)."""
        data = data if isinstance(data, dict) else {}
        missing = [n for n in names if n not in data]
        if not missing:
            return
        if self.profile.blueprint_app:
            raise Answer(web.get_json_result(101, "required argument are missing: %s; " % ",".join(missing)))
        raise Exception("required parameters are missing: %s;" % ",".join(missing))

    def check_config(self, data, *names):
        missing = [n for n in names if n not in data]
        if missing:
            if self.profile.blueprint_app:
                raise KeyError("required parameters are missing: %s; " % ",".join(missing))
            raise Exception("required parameters are missing: %s;" % ",".join(missing))

    def model_path(self, role, party_id, model_id, version):
        return ms.model_dir(self.home, self.profile, role, party_id, model_id, version)

    def model_lock(self, path):
        with self._locks_guard:
            return self.model_locks.setdefault(path, threading.Lock())

    # ------------------------------------------------------------------ federated calls (§2.13)
    def federated(self, dest_party_id, endpoint, body, federated_mode, src_party_id="", src_role=""):
        if federated_mode == "SINGLE" or str(dest_party_id) == "0":
            address = "%s:%s" % (self.config.host, self.config.http_port)
        else:
            address = self.config.route_table.get(str(dest_party_id))
            if not address:
                raise Exception("can not found route for party %s" % dest_party_id)
        headers = {"src-party-id": str(src_party_id), "dest-party-id": str(dest_party_id), "src-role": str(src_role)}
        last = None
        for attempt in range(3):
            try:
                reply = requests.post("http://%s/v1%s" % (address, endpoint), json=body, headers=headers,
                                      timeout=remote_request_timeout())
                if self.profile.flask2:
                    reply.raise_for_status()
                return reply.json()
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                time.sleep(0.2 * (attempt + 1))
        raise last

    # ------------------------------------------------------------------ migrate (§2.1, §2.2, §3)
    def migrate(self, req):
        conf = req.json
        if self.profile.blueprint_app:
            self.validate(conf, "migrate_initiator", "role", "migrate_role", "model_id", "model_version",
                          "execute_party", "job_parameters")
        else:
            conf["migrate_initiator"]["party_id"]  # pylint: disable=pointless-statement
            self.check_config(conf, "migrate_initiator", "role", "migrate_role", "model_id", "model_version",
                              "execute_party", "job_parameters")
        role, migrate_role = conf["role"], conf["migrate_role"]
        verdict = compare_roles(migrate_role, role)
        if verdict == "structure":
            return web.get_json_result(100, "The structure of roles data of local configuration is different from "
                                            "model runtime configuration's. Migration aborting.")
        if verdict == "same":
            return web.get_json_result(100, "The config of previous roles is the same with that of migrate roles. "
                                            "There is no need to migrate model. Migration process aborting.")
        job_id = generate_job_id()
        unify = conf.get("unify_model_version") or job_id
        party_map = {}
        for role_name, ids in role.items():
            party_map[role_name] = {pid: {"role": role_name, "party_id": pid,
                                          "migrate_party_id": migrate_role[role_name][i]}
                                    for i, pid in enumerate(ids)}
        status, data, detail = True, {}, {}
        for role_name, ids in conf["execute_party"].items():
            locals_of_role = party_map[role_name]
            data[role_name] = {}
            for pid in ids:
                body = dict(conf, local=locals_of_role.get(pid), unify_model_version=unify)
                try:
                    if not self.profile.flask2:
                        body["src_role"] = conf["migrate_initiator"]["role"]
                    reply = self.federated(pid, "/model/migrate/do", body, conf["job_parameters"]["federated_mode"],
                                           conf["migrate_initiator"]["party_id"], conf["migrate_initiator"]["role"])
                except Exception as exc:  # pylint: disable=broad-except
                    log.info("migrate of %s %s failed: %r", role_name, pid, exc)
                    data[role_name][pid] = 100
                    status = False
                    continue
                data[role_name][pid] = reply.get("retcode", 100)
                detail.setdefault(role_name, {})[pid] = {"retcode": reply.get("retcode", 100),
                                                         "retmsg": reply.get("retmsg", "")}
        data["detail"] = detail
        return web.get_json_result(0 if status else 101, "success" if status else "failed", data=_str_keys(data),
                                   job_id=job_id)

    def migrate_do(self, req):
        conf = req.json
        if self.profile.flask2:
            local_role = conf["local"]["role"]
        try:
            local = conf["local"]
            local_role = local["role"]
            return web.jsonify(self._migrate_party(conf, local, local_role))
        except Exception as exc:  # pylint: disable=broad-except
            log.info("migrate/do failed: %r", exc)
            return web.jsonify({"retcode": 100, "retmsg": str(exc), "data": {}})

    def _migrate_party(self, conf, local, local_role):
        p = self.profile
        model_id, version, unify = conf["model_id"], conf["model_version"], conf["unify_model_version"]
        source = self.model_path(local_role, local["party_id"], model_id, version)
        if not ms.exists(source):
            raise Exception("Can not found %s %s model local cache%s" % (model_id, version, "." if p.flask2 else ""))
        migrate_role, initiator = conf["migrate_role"], conf["migrate_initiator"]
        # Converters (DataTransform in 1.9+) need integer party ids and both guest and host.
        guest, host = conf["role"]["guest"], conf["role"]["host"]
        if p.flask2:
            for pid in list(guest) + list(host) + [x for ids in migrate_role.values() for x in ids]:
                if not isinstance(pid, int):
                    raise ValueError("party id must be an integer, got %r" % (pid,))
        new_model_id = ms.gen_model_id(migrate_role)
        new_party_id = local["migrate_party_id"]
        new_pmid = ms.party_model_id(local_role, new_party_id, new_model_id)
        if p.keeps_migrated_model:
            taken = self.db.find(role=local_role, party_id=new_party_id, model_id=new_model_id, model_version=unify)
        else:
            taken = self.db.find(model_version=unify)
        if taken:
            raise Exception("Unify model version %s has been occupied in database. Please choose another unify model "
                            "version and try again." % unify)
        target = self.model_path(local_role, new_party_id, new_model_id, unify)
        with self.model_lock(target):
            shutil.copytree(source, target)
            try:
                pipeline = ms.read_pipeline(target)
                train_conf = json.loads(pipeline.train_runtime_conf or b"{}")
                train_conf["role"] = migrate_role
                train_conf["initiator"] = initiator
                params = train_conf.setdefault("job_parameters", {})
                params = params.setdefault("common", {}) if train_conf.get("dsl_version") == 2 else params
                params["model_id"], params["model_version"] = new_model_id, unify
                pipeline.train_runtime_conf = ms.json_bytes(train_conf)
                pipeline.model_id, pipeline.model_version = new_model_id, unify
                if _version_gt(pipeline.fate_version, "1.5.0"):
                    pipeline.initiator_role = initiator["role"]
                    pipeline.initiator_party_id = initiator["party_id"]
                if p.flask2:
                    pipeline.roles = ms.json_bytes(migrate_role)
                    on_party = json.loads(pipeline.runtime_conf_on_party or b"{}")
                    on_party.update(role=migrate_role, initiator=initiator)
                    on_party.setdefault("job_parameters", {}).update(model_id=new_model_id, model_version=unify)
                    pipeline.runtime_conf_on_party = ms.json_bytes(on_party)
                ms.write_pipeline(target, pipeline, with_json=p.blueprint_app)
                if not p.flask2:
                    with open(os.path.join(target, "pipeline.pb"), "wb") as f:
                        f.write(pipeline.SerializeToString())
                zip_path = os.path.join(self.temp_dir, "%s_%s.zip" % (new_pmid, unify))
                if p.import_model_json:
                    info = {"role": local_role, "party_id": int(new_party_id), "model_id": new_model_id,
                            "model_version": unify, "file": zip_path}
                    if p.flask2:
                        info["force_update"] = False
                    with open(os.path.join(target, "import_model.json"), "w") as f:
                        json.dump(info, f)
                ms.pack(target, zip_path)
                if p.sha1_sidecar:
                    with open(zip_path + ".sha1", "w") as f:
                        f.write(ms.file_digest(zip_path, "sha1"))
                if p.keeps_migrated_model:
                    row = self.model_row(local_role, new_party_id, target)
                    row["f_archive_sha256"] = ms.file_digest(zip_path)
                    self.db.save(row)
                    if self.registry:
                        self.registry.register_model(new_pmid, unify)
            finally:
                if not p.keeps_migrated_model:
                    shutil.rmtree(target, ignore_errors=True)
        shown_id = new_model_id if p.flask2 else new_pmid
        return {"retcode": 0,
                "retmsg": "Migrating model successfully. The configuration of model has been modified automatically. "
                          "New model id is: %s, model version is: %s. Model files can be found at '%s'."
                          % (shown_id, unify, zip_path),
                "data": {"model_id": new_pmid, "model_version": unify, "path": zip_path}}

    # ------------------------------------------------------------------ import / export (§2.3, §2.4, §4)
    def operate(self, req, operation):
        if operation == "import":
            return self.import_model(req)
        if operation == "export":
            return self.export_model(req)
        if operation in ("store", "restore"):
            raise Exception("model store is not configured: set enable_model_store and model_store_address first")
        raise Exception("Can not support this operating now: %s" % operation)

    def import_model(self, req):
        p = self.profile
        fields = dict(req.form) if req.files or req.form else (req.json or {})
        self.validate(fields, "role", "party_id", "model_id", "model_version")
        upload = req.files.get("file")
        if p.flask2 and upload is None:
            return web.error_response(400, "`file` is required.")
        force_update = False
        if p.import_conflict_409:
            force_update = bool(int(fields.get("force_update", 0)))
        role, party_id = fields["role"], str(fields["party_id"])
        model_id, version = fields["model_id"], fields["model_version"]
        if p.import_conflict_409 and not force_update and \
                self.db.find(role=role, party_id=party_id, model_id=model_id, model_version=version):
            return web.error_response(409, "Model already exists.")
        if upload is None:
            raise AttributeError("'NoneType' object has no attribute 'filename'")
        saved = os.path.join(self.temp_dir, uuid.uuid1().hex if p.uuid_upload_name else upload.filename)
        shutil.move(upload.path, saved)
        target = self.model_path(role, party_id, model_id, version)
        pmid = ms.party_model_id(role, party_id, model_id)
        with self.model_lock(target):
            if ms.exists(target) and not force_update:
                raise FileExistsError("Model %s %s local cache already existed%s" % (pmid, version,
                                                                                     "." if p.flask2 else ""))
            if p.flask2 and fields.get("hash"):
                digest = ms.file_digest(saved)
                if digest != fields["hash"]:
                    raise ValueError("Model archive hash mismatch. path: %s, expected: %s, actual: %s"
                                     % (saved, fields["hash"], digest))
            if p.sha1_sidecar and os.path.exists(saved + ".sha1"):
                with open(saved + ".sha1") as f:
                    if f.read().strip() != ms.file_digest(saved, "sha1"):
                        raise ValueError("Hash not match. path: %s" % saved)
            ms.unpack(saved, target)
            pipeline = ms.read_pipeline(target)
            train_conf = json.loads(pipeline.train_runtime_conf or b"{}")
            roles = train_conf.get("role", {})
            if p.flask2:
                if party_id not in [str(x) for x in roles.get(role, [])]:
                    shutil.rmtree(target, ignore_errors=True)
                    return web.error_response(400, 'Party id "%s" is not in role "%s", please check if the party id '
                                                   'and role is valid.' % (party_id, role))
            elif not any(party_id in [str(x) for x in ids] for ids in roles.values()):
                shutil.rmtree(target, ignore_errors=True)
                raise Exception("party id {} is not in model roles, please check if the party id is valid.")
            if not p.flask2:
                if not self.db.find(job_id=pipeline.model_version, role=role):
                    self.db.save(self.model_row(role, party_id, target, imported=True))
                return web.get_json_result(0, "success")
            # G4 rewrites the ids to the request's and repairs models migrated before 1.9 (§4.3).
            if self.db.find(role=role, party_id=party_id, model_id=model_id, model_version=version) and \
                    not force_update:
                raise ValueError("The define_meta data already exists in database.")
            pipeline.model_id, pipeline.model_version = model_id, version
            params = train_conf.setdefault("job_parameters", {})
            params = params.setdefault("common", {}) if train_conf.get("dsl_version") == 2 else params
            params.update(model_id=model_id, model_version=version)
            pipeline.train_runtime_conf = ms.json_bytes(train_conf)
            on_party = json.loads(pipeline.runtime_conf_on_party or b"{}")
            on_party.setdefault("job_parameters", {}).update(model_id=model_id, model_version=version)
            if not _version_gt(pipeline.fate_version, "1.8.99"):
                pipeline.roles = ms.json_bytes(train_conf.get("role", {}))
                on_party.update(role=train_conf.get("role", {}), initiator=train_conf.get("initiator", {}))
            pipeline.runtime_conf_on_party = ms.json_bytes(on_party)
            ms.write_pipeline(target, pipeline, with_json=True)
            job_id = generate_job_id()
            row = self.model_row(role, party_id, target, imported=True, job_id=job_id)
            row["f_archive_sha256"] = ms.file_digest(saved)
            row["f_archive_from_ip"] = req.remote
            self.db.save(row)
            if self.registry:
                self.registry.register_model(pmid, version)
        return web.get_json_result(0, "success", data={"job_id": job_id, "role": role, "party_id": party_id,
                                                       "model_id": model_id, "model_version": version})

    def export_model(self, req):
        p = self.profile
        fields = self._fields(req)
        self.validate(fields, "role", "party_id", "model_id", "model_version")
        role, party_id = fields["role"], str(fields["party_id"])
        model_id, version = fields["model_id"], fields["model_version"]
        pmid = ms.party_model_id(role, party_id, model_id)
        path = self.model_path(role, party_id, model_id, version)
        if not ms.exists(path):
            if p.export_missing_status == 404:
                return web.error_response(404, "Model %s %s does not exist." % (pmid, version))
            return web.error_response(210, "Model %s %s is not exist." % (pmid, version))
        name = "%s_%s.zip" % (pmid, version)
        zip_path = os.path.join(self.temp_dir, name)
        with self.model_lock(path):
            if p.flask2:
                with open(os.path.join(path, "import_model.json"), "w") as f:
                    json.dump({"role": role, "party_id": int(party_id), "model_id": model_id,
                               "model_version": version, "file": zip_path, "force_update": False}, f)
            ms.pack(path, zip_path)
            if p.sha1_sidecar:
                with open(zip_path + ".sha1", "w") as f:
                    f.write(ms.file_digest(zip_path, "sha1"))
        return web.Response(200, content_type="application/zip", file_path=zip_path,
                            headers={"Content-Disposition": "attachment; filename=%s" % name})

    # ------------------------------------------------------------------ query / deploy (§2.8, §2.9)
    def model_row(self, role, party_id, path, imported=False, job_id=None):
        pipeline = ms.read_pipeline(path)
        info = ms.pipeline_as_dict(pipeline)
        train_conf = info.get("train_runtime_conf") or {}
        size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
        row = {"f_role": role, "f_party_id": str(party_id), "f_model_id": pipeline.model_id,
               "f_model_version": pipeline.model_version, "f_job_id": job_id or pipeline.model_version,
               "f_roles": info.get("roles") or train_conf.get("role"),
               "f_initiator_role": pipeline.initiator_role or train_conf.get("initiator", {}).get("role"),
               "f_initiator_party_id": pipeline.initiator_party_id or train_conf.get("initiator", {}).get("party_id"),
               "f_runtime_conf": train_conf, "f_train_runtime_conf": train_conf,
               "f_train_dsl": info.get("train_dsl"), "f_inference_dsl": info.get("inference_dsl"),
               "f_runtime_conf_on_party": info.get("runtime_conf_on_party"), "f_fate_version": pipeline.fate_version,
               "f_parent": pipeline.parent, "f_parent_info": info.get("parent_info"), "f_size": size,
               "f_imported": 1 if imported else 0, "f_loaded_times": 0}
        if self.profile.blueprint_app:
            row["f_description"] = ""
            row["f_job_status"] = "success"
        return row

    def local_models(self, role=None, party_id=None, model_id=None, model_version=None):
        """Glob model_local_cache like FATE's query fallback; yields (role, party_id, path)."""
        cache = os.path.join(self.home, self.profile.model_local_cache)
        if not os.path.isdir(cache):
            return
        for name in sorted(os.listdir(cache)):
            parts = name.split("#", 2)
            if len(parts) != 3:
                continue
            r, pid, mid = parts
            if (role and r != role) or (party_id is not None and pid != str(party_id)) or (model_id and mid != model_id):
                continue
            for version in sorted(os.listdir(os.path.join(cache, name))):
                if model_version and version != str(model_version):
                    continue
                path = os.path.join(cache, name, version)
                if ms.exists(path):
                    yield r, pid, path

    def query(self, req):
        conf = req.json or {}
        if not self.profile.flask2 and "model_version" not in conf:
            raise TypeError("query_model_info() missing 1 required positional argument: 'model_version'")
        filters = {k: conf.get(k) for k in ("role", "party_id", "model_id", "model_version")}
        rows = self.db.find(**filters)
        retmsg = "Query model info from db success."
        if not rows:
            for role, pid, path in self.local_models(**filters):
                row = self.model_row(role, pid, path)
                self.db.save(row)
                rows.append(row)
            retmsg = "Query model info from local model success."
        if not rows:
            if self.profile.flask2:
                return web.get_json_result(100, "Query model info failed, cannot find model from db and local model "
                                                "files. Try use both model id and model version to query model info "
                                                "from local models.")
            return web.raw_json({"retcode": 100, "retmsg": "Query model info failed, cannot find model from db. Try "
                                                           "use both model id and model version to query model info "
                                                           "from local models", "data": []})
        wanted = conf.get("query_filters")
        if wanted:
            rows = [{k: v for k, v in row.items() if k[2:] in wanted} for row in rows]
        if self.profile.flask2:
            return web.get_json_result(0, retmsg, data=rows)
        return web.raw_json({"retcode": 0, "retmsg": retmsg, "data": rows})

    def deploy(self, req):
        conf = req.json or {}
        self.validate(conf, "model_id", "model_version")
        model_id, version = conf["model_id"], conf["model_version"]
        source = None
        for role, pid, path in self.local_models(model_id=model_id, model_version=version):
            pipeline = ms.read_pipeline(path)
            if pipeline.initiator_role == role and str(pipeline.initiator_party_id) == pid:
                source = pipeline
                break
        if source is None:
            if self.profile.flask2:
                return web.error_response(404, "Deploy model failed. Model %s %s not found." % (model_id, version))
            raise Exception("Deploy model failed, no model %s %s found." % (model_id, version))
        child_version = generate_job_id()
        roles = json.loads(source.roles or b"{}") or json.loads(source.train_runtime_conf).get("role", {})
        data, detail, status = {}, {}, True
        for role, ids in roles.items():
            data[role] = {}
            for pid in ids:
                body = dict(conf, local={"role": role, "party_id": pid}, child_model_version=child_version)
                try:
                    reply = self.federated(pid, "/model/deploy/do", body, "MULTIPLE", source.initiator_party_id,
                                           source.initiator_role)
                except Exception:  # pylint: disable=broad-except
                    data[role][str(pid)] = 100
                    status = False
                    continue
                data[role][str(pid)] = reply.get("retcode", 100)
                detail.setdefault(role, {})[str(pid)] = {"retcode": reply.get("retcode"), "retmsg": reply.get("retmsg")}
                status = status and reply.get("retcode") == 0
        data.update(detail=detail, model_id=model_id, model_version=child_version)
        return web.get_json_result(0 if status else 101, "success" if status else "failed", data=data)

    def deploy_do(self, req):
        conf = req.json
        local = conf["local"]
        role, pid = local["role"], local["party_id"]
        source = self.model_path(role, pid, conf["model_id"], conf["model_version"])
        target = self.model_path(role, pid, conf["model_id"], conf["child_model_version"])
        try:
            if not ms.exists(source):
                raise Exception("Model %s %s not exists in model local cache."
                                % (ms.party_model_id(role, pid, conf["model_id"]), conf["model_version"]))
            with self.model_lock(target):
                shutil.copytree(source, target)
                pipeline = ms.read_pipeline(target)
                pipeline.parent = False
                pipeline.parent_info = ms.json_bytes({"parent_model_id": conf["model_id"],
                                                      "parent_model_version": conf["model_version"]})
                pipeline.model_version = conf["child_model_version"]
                train_conf = json.loads(pipeline.train_runtime_conf or b"{}")
                params = train_conf.setdefault("job_parameters", {})
                params = params.setdefault("common", {}) if train_conf.get("dsl_version") == 2 else params
                params["model_version"] = conf["child_model_version"]
                pipeline.train_runtime_conf = ms.json_bytes(train_conf)
                ms.write_pipeline(target, pipeline, with_json=self.profile.blueprint_app)
                self.db.save(self.model_row(role, pid, target))
                if self.registry:
                    self.registry.register_model(ms.party_model_id(role, pid, conf["model_id"]),
                                                 conf["child_model_version"])
        except Exception as exc:  # pylint: disable=broad-except
            return web.jsonify({"retcode": 100, "retmsg": str(exc)})
        return web.jsonify({"retcode": 0, "retmsg": "deploy model of role %s %s success" % (role, pid)})

    # ------------------------------------------------------------------ load / bind (§2.5-§2.7, §6)
    def _conf_from_job_id(self, conf, what):
        job_id = conf["job_id"]
        rows = self.db.find(role="guest", model_version=job_id)
        path = None
        if rows:
            row = rows[0]
            path = self.model_path("guest", row["f_party_id"], row["f_model_id"], job_id)
        else:
            for _, _, found in self.local_models(role="guest", model_version=job_id):
                path = found
                break
        if not path or not ms.exists(path):
            prefix = "Model" if self.profile.flask2 else "model"
            if what == "load":
                raise Answer(web.get_json_result(101, "%s with version %s can not be found in database. Please check "
                                                      "if the model version is valid." % (prefix, job_id)))
            raise Answer(web.get_json_result(101, "%s %s can not be found in database. Please check if the model "
                                                  "version is valid." % (prefix, job_id)))
        pipeline = ms.read_pipeline(path)
        train_conf = json.loads(pipeline.train_runtime_conf)
        roles = {r: [str(x) for x in ids] for r, ids in train_conf["role"].items()}
        return dict(conf, initiator=train_conf["initiator"], role=roles,
                    job_parameters={"model_id": pipeline.model_id, "model_version": pipeline.model_version,
                                    "work_mode": 1})

    def load(self, req):
        conf = req.json
        if conf is None:
            raise AttributeError("'NoneType' object has no attribute 'get'")
        if "job_id" in conf and "role" not in conf:
            conf = self._conf_from_job_id(conf, "load")
        params = conf["job_parameters"]
        mode = params.get("federated_mode")
        if not mode:
            if self.profile.load_mode_from_work_mode:
                mode = "MULTIPLE" if int(params["work_mode"]) == 1 else "SINGLE"
            else:
                mode = "MULTIPLE"
        job_id = generate_job_id()
        data, detail, status = {}, {}, True
        for role, ids in conf["role"].items():
            if role == "arbiter":
                continue
            data[role] = {}
            for pid in ids:
                body = dict(conf, local={"role": role, "party_id": pid})
                try:
                    reply = self.federated(pid, "/model/load/do", body, mode, conf["initiator"]["party_id"],
                                           conf["initiator"]["role"])
                except Exception as exc:  # pylint: disable=broad-except
                    log.info("load on %s %s failed: %r", role, pid, exc)
                    data[role][str(pid)] = 100
                    status = False
                    continue
                rc = reply.get("retcode", 100)
                data[role][str(pid)] = rc
                detail.setdefault(role, {})[str(pid)] = {"retcode": rc, "retmsg": reply.get("retmsg", "")}
                status = status and rc == 0
        data["detail"] = detail
        return web.get_json_result(0 if status else 101, "success" if status else "failed", data=data, job_id=job_id)

    def load_do(self, req):
        conf = req.json
        local = conf["local"]
        params = conf["job_parameters"]
        model_id, version = params["model_id"], params["model_version"]
        path = self.model_path(local["role"], local["party_id"], model_id, version)
        pmid = ms.party_model_id(local["role"], local["party_id"], model_id)
        if self.profile.has_deploy:
            if not ms.exists(path):
                message = "Model %s %s not exists in model local cache." % (pmid, version)
                if self.profile.flask2:
                    raise FileNotFoundError(message)
                raise Exception(message)
            pipeline = ms.read_pipeline(path)
            dsl_v2 = json.loads(pipeline.train_runtime_conf or b"{}").get("dsl_version") == 2
            if dsl_v2 and pipeline.parent and _version_gt(pipeline.fate_version, "1.5.0"):
                return web.jsonify({"retcode": 100, "retmsg": "Only deployed models could be used to execute process "
                                                              "of loading. Please deploy model before loading."})
        servings = self.servings()
        if not servings:
            return web.jsonify({"retcode": 100, "retmsg": "Please configure servings address"})
        request = self._publish_request(conf, local)
        if self.config.use_registry:
            request.filePath = params.get("file_path", "")
        elif self.profile.has_query and not params.get("use_transfer_url_on_serving"):
            request.filePath = "http://%s:%s/v1/model/transfer" % (self.config.host, self.config.http_port)
        else:
            request.filePath = params.get("file_path", "")
        request.loadType = params.get("load_type", "FATEFLOW")
        for serving in servings:
            with _channel(serving) as stub:
                reply = stub.publishLoad(request, timeout=60)
            if reply.statusCode != 0:
                return web.jsonify({"retcode": reply.statusCode, "retmsg": "%s %s" % (reply.message, reply.error)})
        self.db.increment_loaded(local["role"], local["party_id"], model_id, version)
        if not self.profile.blueprint_app and os.path.isdir(path):
            backup = os.path.join(self.home, "loaded_model_backup", pmid, version)
            if not os.path.exists(backup):
                shutil.copytree(path, backup)
        return web.jsonify({"retcode": 0, "retmsg": "success"})

    def bind(self, req):
        conf = req.json
        if conf is None:
            raise AttributeError("'NoneType' object has no attribute 'get'")
        if "job_id" in conf and "role" not in conf:
            conf = self._conf_from_job_id(conf, "bind")
        service_id = conf.get("service_id")
        if not service_id:
            return web.get_json_result(101, "no service id")
        self.check_config(conf, "initiator", "role", "job_parameters")
        servings = conf.get("servings") or self.servings()
        if not servings:
            return web.get_json_result(100, "Please configure servings address")
        initiator = conf["initiator"]
        request = self._publish_request(conf, initiator, only_initiator=True)
        request.serviceId = service_id
        for serving in servings:
            with _channel(serving) as stub:
                reply = stub.publishBind(request, timeout=60)
            if reply.statusCode != 0:
                return web.get_json_result(reply.statusCode, reply.message)
        return web.get_json_result(0, "service id is %s" % service_id)

    def _publish_request(self, conf, local, only_initiator=False):
        """PublishRequest; party ids go into proto3 string fields (ints fail before 1.7.1, §2.5)."""
        conv = str if self.profile.str_party_ids_for_serving else (lambda x: x)
        params = conf["job_parameters"]
        request = model_service_pb2.PublishRequest()
        request.local.role = local["role"]
        request.local.partyId = conv(local["party_id"])
        for role, ids in conf["role"].items():
            for pid in ids:
                request.role[role].partyId.append(conv(pid))
                if only_initiator:
                    continue
                info = request.model[role].roleModelInfo[conv(pid)]
                info.tableName = params["model_version"]
                info.namespace = ms.party_model_id(role, pid, params["model_id"])
        if only_initiator:
            info = request.model[local["role"]].roleModelInfo[conv(local["party_id"])]
            info.tableName = params["model_version"]
            info.namespace = ms.party_model_id(local["role"], local["party_id"], params["model_id"])
        return request

    def servings(self):
        if self.config.use_registry and self.registry:
            return self.registry.servings()
        return list(self.config.servings)

    # ------------------------------------------------------------------ transfer (§2.10)
    def transfer(self, req, party_model_id=None, model_version=None):
        if party_model_id is not None:
            namespace, name = urllib.parse.unquote(party_model_id).replace("~", "#"), urllib.parse.unquote(model_version)
        else:
            conf = req.json or {}
            namespace, name = conf.get("namespace"), conf.get("name")
        if self.profile.has_transfer_path and not (namespace and name):
            return web.error_response(400, "namespace and name are required")
        path = os.path.join(self.home, self.profile.model_local_cache, namespace, name)
        if not ms.exists(path):
            if self.profile.has_transfer_path:
                return web.error_response(404, "model not found")
            raise Exception("Can not found %s %s model local cache" % (namespace, name))
        data = {key: base64.b64encode(value).decode() for key, value in ms.component_files(path).items()}
        return web.get_json_result(0, "success", data=data)

    # ------------------------------------------------------------------ versions (§2.11)
    def version_get(self, req):
        conf = req.json
        versions = self.config.versions or {"FATE": self.profile.fate_version}
        if self.profile.blueprint_app:
            module = (conf or {}).get("module") or "FATE"
            if module not in versions:
                return web.error_response(404, "invalid module, please input module parameter in this scope: %s"
                                          % ", ".join(versions))
            return web.get_json_result(data={module: versions[module], "API": "v1"})
        module = conf.get("module")
        return web.get_json_result(data={module: versions.get(module or "FATE", versions.get("FATE"))})

    def server_version_get(self, req):
        conf = req.json or {}
        versions = dict(self.config.versions or {"FATE": self.profile.fate_version})
        if conf.get("module"):
            data = {conf["module"]: versions.get(conf["module"]), "API": "v1"}
        else:
            data = dict(versions, API="v1")
        return web.get_json_result(data=data)

    def server_reload(self, req):  # servings and zookeeper are only read at start in the sandbox
        return web.get_json_result(data={})


def compare_roles(migrate_role, role):
    """§2.1: 'structure' when key sets or lengths differ, 'same' when every role's id set is equal."""
    if not isinstance(migrate_role, dict) or not isinstance(role, dict) or set(migrate_role) != set(role):
        return "structure"
    same = True
    for key in role:
        if not isinstance(role[key], list) or not isinstance(migrate_role[key], list) or \
                len(role[key]) != len(migrate_role[key]):
            return "structure"
        if {str(x) for x in role[key]} != {str(x) for x in migrate_role[key]}:
            same = False
    return "same" if same else "different"


def _version_gt(version, other):
    def parse(v):
        return tuple(int(x) for x in re.findall(r"\d+", v or "0")[:3])
    return parse(version) > parse(other)


def _str_keys(data):
    """JSON object keys are strings on the wire; copy so int party ids serialise like Flask does."""
    return json.loads(json.dumps(copy.deepcopy(data)))


class _channel:  # pylint: disable=invalid-name
    def __init__(self, address):
        import grpc  # pylint: disable=import-outside-toplevel
        self.channel = grpc.insecure_channel(address)

    def __enter__(self):
        return model_service_pb2_grpc.ModelServiceStub(self.channel)

    def __exit__(self, *exc):
        self.channel.close()


def _summary(req):
    if req.files:
        return "form=%s files=%s" % (sorted(req.form), {k: v.size for k, v in req.files.items()})
    if req.body:
        text = req.body[:300].decode("utf-8", "replace")
        return "body=%s" % text
    return ""

