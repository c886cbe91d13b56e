"""gRPC `com.webank.ai.fate.api.mlmodel.manager.ModelService`, the part of FATE-Serving FATE Flow calls."""
import logging

from fate_sandbox.protos import model_service_pb2, model_service_pb2_grpc

from . import codes
from .models import ServingError

LOG = logging.getLogger("fate_sandbox.serving")

EMPTY_DATA = b"{}"   # FATE-Serving sends JSON of ReturnResult.data, an empty map for load and bind


def _response(code, message=""):
    return model_service_pb2.PublishResponse(statusCode=code, message=message, data=EMPTY_DATA)


def _describe(req):
    return "local=%s/%s serviceId=%r loadType=%r filePath=%r roles=%s" % (
        req.local.role, req.local.partyId, req.serviceId, req.loadType, req.filePath,
        {role: list(party.partyId) for role, party in req.role.items()})


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def _run(self, name, req, action):
        LOG.info("%s: %s", name, _describe(req))
        try:
            action(req)
        except ServingError as exc:
            LOG.warning("%s failed: %d %s", name, exc.code, exc.message)
            return _response(exc.code, exc.message)
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("%s failed", name)
            return _response(codes.SYSTEM_ERROR, str(exc))
        return _response(codes.SUCCESS)

    def publishLoad(self, request, context):
        return self._run("publishLoad", request, self.manager.load)

    def publishBind(self, request, context):
        return self._run("publishBind", request, self.manager.bind)

    def publishOnline(self, request, context):
        # FATE-Serving 2.x handles publishOnline as a bind.
        return self._run("publishOnline", request, self.manager.bind)

    def unload(self, request, context):
        return self._run("unload", request, lambda r: self.manager.unload(r.tableName, r.namespace))

    def unbind(self, request, context):
        return self._run("unbind", request, lambda r: self.manager.unbind(r.serviceId))

    def queryModel(self, request, context):
        LOG.info("queryModel: type %d serviceId=%r tableName=%r namespace=%r", request.queryType,
                 request.serviceId, request.tableName, request.namespace)
        found = self.manager.query(request.queryType, request.serviceId, request.tableName, request.namespace)
        reply = model_service_pb2.QueryModelResponse(retcode=codes.SUCCESS)
        for index, (model, service_ids) in enumerate(found):
            reply.modelInfos.add(tableName=model.table_name, namespace=model.namespace, serviceIds=service_ids,
                                 content=model.content(service_ids), index=index)
        return reply
