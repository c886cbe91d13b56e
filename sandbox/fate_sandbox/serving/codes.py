"""Status codes and fixed messages of FATE-Serving 2.1.6 that the emulator reproduces.

Codes are FATE-Serving's `StatusCode` constants (fate-serving-core .../constant/StatusCode.java). A host
party's failure reaches the guest's caller as "2" + the host code (ErrorMessageUtil.transformRemoteErrorCode)
with the message "host return code <code> host msg :<host message>" (ErrorMessageUtil.buildRemoteRpcErrorMsg).
"""

SUCCESS = 0
PARAM_ERROR = 100            # GUEST_PARAM_ERROR / HOST_PARAM_ERROR
FEATURE_ERROR = 102          # GUEST_FEATURE_ERROR
MODEL_NULL = 104             # MODEL_NULL / HOST_MODEL_NULL
NET_ERROR = 105
LOAD_MODEL_ERROR = 107
SYSTEM_ERROR = 110
HOST_FEATURE_NOT_EXIST = 113
MODEL_INIT_ERROR = 123
PROXY_PARAM_ERROR = 134

MODEL_INIT_MESSAGE = ("model initialization error, please check if the model exists and the configuration of "
                      "the FATEFLOW load model process is correct.")
HOST_MODEL_NULL_MESSAGE = "mode is null"          # sic, HostModelInterceptor
HOST_ADAPTOR_ERROR_MESSAGE = "adaptor return error"


def remote_code(code):
    """The guest-side code for a host failure: '2' followed by the host's code (104 -> 2104)."""
    return int("2%d" % code)


def remote_message(code, message):
    return "host return code %d host msg :%s" % (code, message or "")
