"""Models on disk as FATE Flow 1.x lays them out, and their zip archives.

model_local_cache/<role>#<party_id>#<model_id>/<model_version>/
    define/define_meta.yaml
    variables/data/<component>/<alias>/<ModelName>      (protobuf bytes)
    variables/data/pipeline/pipeline/Pipeline
    run_parameters/<component>/run_parameters.json      (1.7+)
"""
import hashlib
import json
import math
import os
import random
import shutil
import zipfile

import yaml

from fate_sandbox.protos import pipeline_pb2

PIPELINE_PATH = "variables/data/pipeline/pipeline/Pipeline"
DEFINE_META_PATH = "define/define_meta.yaml"
# The launcher's --model-size file: a component's data file that define_meta.yaml does not list, so migrate,
# export and import carry it (they copy and zip the whole directory) while loading into serving skips it.
PAYLOAD_PATH = "variables/data/payload_0/model/Payload"

# The model of FATE's migration guide.
GUIDE_ROLES = {"guest": [9999], "host": [10000], "arbiter": [10000]}
GUIDE_MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"
TRAINED_VERSION = "202006171904247702041"     # the trained (parent) model
DEPLOYED_VERSION = "202006171911346893310"    # its deployed child, ready to migrate and load

GUEST_FEATURES = ["x0", "x1", "x2", "x3"]
HOST_FEATURES = ["x4", "x5", "x6"]


class ModelError(Exception):
    """A model directory or archive is missing or malformed."""


def gen_model_id(roles):
    """FATE's model id: roles sorted, '<role>-<sorted unique ids joined by _>', '#'-joined, + '#model'."""
    parts = []
    for role in sorted(roles):
        ids = sorted(set(roles[role]))
        parts.append("%s-%s" % (role, "_".join(str(i) for i in ids)))
    return "#".join(parts or ["all"]) + "#model"


def party_model_id(role, party_id, model_id):
    return "%s#%s#%s" % (role, party_id, model_id)


def model_dir(home, profile, role, party_id, model_id, version):
    return os.path.join(home, profile.model_local_cache, party_model_id(role, party_id, model_id), str(version))


def exists(path):
    """A model exists when its directory holds something other than a filelock file."""
    return os.path.isdir(path) and any(name != ".lock" for name in os.listdir(path))


def read_pipeline(path):
    pipeline = pipeline_pb2.Pipeline()
    try:
        with open(os.path.join(path, PIPELINE_PATH), "rb") as f:
            pipeline.ParseFromString(f.read())
    except FileNotFoundError as exc:
        raise ModelError("Can not found pipeline file in model.") from exc
    return pipeline


def write_pipeline(path, pipeline, with_json=False):
    _write(os.path.join(path, PIPELINE_PATH), pipeline.SerializeToString())
    if with_json:
        _write(os.path.join(path, PIPELINE_PATH + ".json"), json.dumps(pipeline_as_dict(pipeline)).encode())


def pipeline_as_dict(pipeline):
    """The pipeline's set fields, byte fields decoded as JSON, as /model/query shows them."""
    out = {}
    for field, value in pipeline.ListFields():
        if isinstance(value, bytes):
            try:
                value = json.loads(value.decode() or "null")
            except ValueError:
                value = value.decode(errors="replace")
        out[field.name] = value
    return out


def json_bytes(value):
    return json.dumps(value).encode()


def read_define_meta(path):
    try:
        with open(os.path.join(path, DEFINE_META_PATH)) as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError as exc:
        raise ModelError("define_meta.yaml not found in model %s" % path) from exc


def component_files(path):
    """{'<component>.<alias>:<ModelName>': bytes} for every stored component model, pipeline included."""
    meta = read_define_meta(path)
    out = {}
    for component, aliases in (meta.get("model_proto") or {}).items():
        for alias, names in (aliases or {}).items():
            for model_name in names or {}:
                file_path = os.path.join(path, "variables", "data", component, alias, model_name)
                with open(file_path, "rb") as f:
                    out["%s.%s:%s" % (component, alias, model_name)] = f.read()
    return out


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def pack(path, zip_path):
    """Zip a model directory like shutil.make_archive(root_dir=path): entries relative to it."""
    os.makedirs(os.path.dirname(zip_path), exist_ok=True)
    tmp = zip_path + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            if rel_root != ".":
                zf.write(root, rel_root + "/")
            for name in sorted(files):
                if name == ".lock":
                    continue
                full = os.path.join(root, name)
                arcname = os.path.normpath(os.path.join(rel_root, name))
                # The --model-size payload is random: deflate cannot shrink it and would spend about a minute of
                # CPU per GiB trying, longer than the emulator's 30 s federated call allows on a loaded machine.
                zf.write(full, arcname, zipfile.ZIP_STORED if arcname == PAYLOAD_PATH else zipfile.ZIP_DEFLATED)
    os.replace(tmp, zip_path)
    return zip_path


def unpack(zip_path, path):
    """Extract an archive into a model directory; refuses entries that escape it."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = os.path.realpath(os.path.join(path, info.filename))
            if not (target + os.sep).startswith(os.path.realpath(path) + os.sep) and target != os.path.realpath(path):
                raise ModelError("archive entry %r is outside the model directory" % info.filename)
        zf.extractall(path)


def file_digest(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights(role, party_id, features):
    rnd = random.Random("%s-%s" % (role, party_id))
    return {name: round(rnd.uniform(-1.0, 1.0), 6) for name in features}


def _train_dsl():
    return {"components": {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                             "output": {"data": ["data"], "model": ["model"]}},
        "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                           "output": {"data": ["data"]}},
        "hetero_lr_0": {"module": "HeteroLR", "input": {"data": {"train_data": ["intersection_0.data"]}},
                        "output": {"data": ["data"], "model": ["model"]}},
    }}


def _inference_dsl():
    dsl = _train_dsl()
    dsl["components"]["data_transform_0"]["input"]["model"] = ["pipeline.data_transform_0.model"]
    dsl["components"]["hetero_lr_0"]["input"] = {"data": {"test_data": ["intersection_0.data"]},
                                                 "model": ["pipeline.hetero_lr_0.model"]}
    return dsl


def write_trained_model(home, profile, role, party_id, roles=None, model_id=None, version=TRAINED_VERSION,
                        parent=True, parent_info=None, initiator=None, fate_version=None):
    """Write the sandbox's hetero-LR model for one party, as a FATE job of `roles` left it."""
    roles = roles or GUIDE_ROLES
    model_id = model_id or gen_model_id(roles)
    initiator = initiator or {"role": "guest", "party_id": roles["guest"][0]}
    fate_version = fate_version or profile.fate_version
    path = model_dir(home, profile, role, party_id, model_id, version)
    if exists(path):
        return path
    common = {"job_type": "train", "work_mode": 1, "model_id": model_id, "model_version": version}
    train_conf = {"dsl_version": 2, "initiator": initiator, "role": roles,
                  "job_parameters": {"common": common},
                  "component_parameters": {"common": {"hetero_lr_0": {"penalty": "L2", "max_iter": 10}}}}
    on_party = {"dsl_version": 2, "initiator": initiator, "role": roles, "local": {"role": role, "party_id": party_id},
                "job_parameters": dict(common)}
    pipeline = pipeline_pb2.Pipeline(
        inference_dsl=json_bytes(_inference_dsl()), train_dsl=json_bytes(_train_dsl()),
        train_runtime_conf=json_bytes(train_conf), fate_version=fate_version, model_id=model_id,
        model_version=version, parent=parent, roles=json_bytes(roles), work_mode=1,
        initiator_role=initiator["role"], initiator_party_id=int(initiator["party_id"]),
        runtime_conf_on_party=json_bytes(on_party), parent_info=json_bytes(parent_info or {}))

    meta = {"component_define": {"pipeline": {"module_name": "Pipeline"},
                                 "data_transform_0": {"module_name": "DataTransform"},
                                 "hetero_lr_0": {"module_name": "HeteroLR"}},
            "model_proto": {"pipeline": {"pipeline": {"Pipeline": "Pipeline"}},
                            "data_transform_0": {"model": {"DataTransformMeta": "DataTransformMeta",
                                                           "DataTransformParam": "DataTransformParam"}},
                            "hetero_lr_0": {"model": {"HeteroLogisticRegressionMeta": "LRModelMeta",
                                                      "HeteroLogisticRegressionParam": "LRModelParam"}}}}
    if not profile.blueprint_app:
        meta = dict({"describe": "This is the model definition meta"}, **meta)
    with_json = profile.blueprint_app
    empty = pipeline_pb2.DefaultEmptyFillMessage(flag="set").SerializeToString()
    features = GUEST_FEATURES if role == "guest" else HOST_FEATURES if role == "host" else []
    weights = _weights(role, party_id, features)
    lr_param = pipeline_pb2.LRModelParam(iters=10, loss_history=[0.69, 0.52, 0.47], is_converged=True,
                                         weight=weights, intercept=0.25 if role == "guest" else 0.0,
                                         header=features)
    lr_meta = pipeline_pb2.LRModelMeta(penalty="L2", tol=1e-4, alpha=0.01, optimizer="rmsprop",
                                       batch_size=-1, learning_rate=0.15, max_iter=10)
    data = os.path.join(path, "variables", "data")
    _write(os.path.join(data, "data_transform_0", "model", "DataTransformMeta"), empty)
    _write(os.path.join(data, "data_transform_0", "model", "DataTransformParam"), empty)
    _write(os.path.join(data, "hetero_lr_0", "model", "HeteroLogisticRegressionMeta"), lr_meta.SerializeToString())
    _write(os.path.join(data, "hetero_lr_0", "model", "HeteroLogisticRegressionParam"), lr_param.SerializeToString())
    if with_json:
        _write(os.path.join(data, "hetero_lr_0", "model", "HeteroLogisticRegressionParam.json"),
               json_bytes({"weight": weights, "intercept": lr_param.intercept, "header": features}))
    write_pipeline(path, pipeline, with_json=with_json)
    _write(os.path.join(path, DEFINE_META_PATH), yaml.safe_dump(meta, sort_keys=False).encode())
    if profile.blueprint_app:
        for component in ("data_transform_0", "hetero_lr_0"):
            _write(os.path.join(path, "run_parameters", component, "run_parameters.json"),
                   json_bytes({"module": meta["component_define"][component]["module_name"]}))
    else:
        os.makedirs(os.path.join(path, "variables", "index"), exist_ok=True)
    return path


def seed_guide_model(home, profile, role, party_id, roles=None, payload_size=0):
    """The migration guide's model on one source party: trained, then deployed.

    `roles` is the job's {role: [party ids]} (default: the guide's); its model id follows FATE's rule
    (gen_model_id). `payload_size` > 0 adds PAYLOAD_PATH of that many incompressible bytes to the deployed version.
    """
    roles = roles or GUIDE_ROLES
    model_id = gen_model_id(roles)
    write_trained_model(home, profile, role, party_id, roles=roles, model_id=model_id, version=TRAINED_VERSION,
                        parent=True)
    path = write_trained_model(
        home, profile, role, party_id, roles=roles, model_id=model_id, version=DEPLOYED_VERSION, parent=False,
        parent_info={"parent_model_id": model_id, "parent_model_version": TRAINED_VERSION})
    if payload_size:
        write_payload(os.path.join(path, PAYLOAD_PATH), payload_size)
    return path


def write_payload(path, size, pool_size=8 << 20, chunk=4 << 20):
    """`size` bytes that deflate cannot shrink, written fast: chunks cut at moving offsets from a random pool
    (urandom is ~150 MB/s on the development machine; deflate's 32 KiB window never sees a repeat). Kept when it
    already has that size (--keep-data)."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pool = os.urandom(pool_size)
    doubled = pool + pool
    tmp = path + ".part"
    written, index = 0, 0
    with open(tmp, "wb") as f:
        while written < size:
            offset = (index * 1048573) % pool_size          # a prime stride: every chunk starts elsewhere
            n = min(chunk, size - written)
            f.write(doubled[offset:offset + min(n, pool_size)])
            if n > pool_size:   # chunk larger than the pool (not with the defaults)
                f.write(os.urandom(n - pool_size))
            written += n
            index += 1
    os.replace(tmp, path)
    return path


def lr_score(weights, intercept, features):
    """Partial linear predictor of one party; the guest adds the host's part and applies the sigmoid."""
    total = intercept
    for name, weight in weights.items():
        total += weight * float(features.get(name, 0.0))
    return total


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
