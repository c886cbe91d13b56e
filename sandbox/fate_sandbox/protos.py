"""Protobuf messages used by the emulators, compiled from the .proto files on first use.

The generated modules go to proto/_gen/ (not committed), keyed by a hash of the sources,
so an edited .proto is recompiled and concurrent starts do not race.
"""
import fcntl
import hashlib
import importlib
import os
import sys

_PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proto")
_SOURCES = ("pipeline.proto", "model_service.proto")


def _digest():
    h = hashlib.sha256()
    for name in _SOURCES:
        with open(os.path.join(_PROTO_DIR, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _generate(out_dir):
    from grpc_tools import protoc  # pylint: disable=import-outside-toplevel
    import grpc_tools  # pylint: disable=import-outside-toplevel

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    tmp = out_dir + ".tmp%d" % os.getpid()
    os.makedirs(tmp)
    for name in _SOURCES:
        rc = protoc.main(["protoc", "-I" + _PROTO_DIR, "-I" + include, "--python_out=" + tmp,
                          "--grpc_python_out=" + tmp, os.path.join(_PROTO_DIR, name)])
        if rc != 0:
            raise RuntimeError("protoc failed on %s" % name)
    os.rename(tmp, out_dir)


def _load():
    gen_root = os.path.join(_PROTO_DIR, "_gen")
    os.makedirs(gen_root, exist_ok=True)
    out_dir = os.path.join(gen_root, _digest())
    if not os.path.isdir(out_dir):
        with open(os.path.join(gen_root, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.isdir(out_dir):
                _generate(out_dir)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return (importlib.import_module("pipeline_pb2"), importlib.import_module("model_service_pb2"),
            importlib.import_module("model_service_pb2_grpc"))


pipeline_pb2, model_service_pb2, model_service_pb2_grpc = _load()
