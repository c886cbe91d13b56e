"""Text of the files a sandbox party's FATE and FATE-Serving homes hold.

They are shaped like the files FATE ships (same keys, same nesting, comments, unrelated sections),
because the collection edits some keys in place and must leave everything else byte for byte.
Placeholders are `@name@`; `render` refuses to leave one unfilled.
"""
import re

_PLACEHOLDER = re.compile(r"@([a-z_0-9]+)@")


def render(template, **values):
    def fill(match):
        name = match.group(1)
        if name not in values:
            raise KeyError("template placeholder @%s@ has no value" % name)
        return str(values[name])
    return _PLACEHOLDER.sub(fill, template)


def yaml_list(items, indent):
    """Block-style YAML list lines for plain scalars (addresses), or `[]` when empty."""
    if not items:
        return " []"
    pad = " " * indent
    return "".join("\n%s- %s" % (pad, item) for item in items)


def yaml_bool(value):
    return "true" if value else "false"


# --------------------------------------------------------------------------------------------
# FATE 1.4: arch/conf/server_conf.json + arch/conf/base_conf.yaml
# --------------------------------------------------------------------------------------------

BASE_CONF_14 = """\
# FATE base configuration (FATE 1.4.x), read by FATE Flow when it starts.
# work_mode 0 runs everything on one machine, 1 is a cluster deployment.
work_mode: 1
# true: find FATE-Serving through ZooKeeper (the zookeeper section below)
# instead of the servings list in server_conf.json
use_registry: @use_registry@
fate_flow:
  # listen address of FATE Flow; serving pulls models back from here
  host: @host@
  http_port: @http_port@
  grpc_port: @grpc_port@
database:
  name: fate_flow
  user: fate_dev
  passwd: fate_dev
  host: 127.0.0.1
  port: 3306
  max_connections: 100
  stale_timeout: 30
redis:
  host: 127.0.0.1
  port: 6379
  password: fate_dev
  max_connections: 500
  db: 0
# ZooKeeper ensemble shared with FATE-Serving
zookeeper:
  hosts:@zk_hosts@
  use_acl: @use_acl@
  user: @zk_user@
  password: @zk_password@
# where models are persisted besides the local cache
model_store_address:
  storage: mysql
  name: model
  host: 127.0.0.1
  port: 3306
  user: fate_dev
  passwd: fate_dev
  max_connections: 10
  stale_timeout: 10
"""


def server_conf_14(host, http_port, grpc_port, servings):
    """arch/conf/server_conf.json as 1.4.x ships it (JSON: no comments)."""
    import json
    conf = {"servers": {
        "roll": {"host": "127.0.0.1", "port": 8011},
        "federation": {"host": "127.0.0.1", "port": 9394},
        "fateflow": {"host": host, "grpc.port": grpc_port, "http.port": http_port},
        "fateboard": {"host": host, "port": 8080},
        "proxy": {"host": "127.0.0.1", "port": 9370},
        "fatemanager": {"host": "127.0.0.1", "port": 8001, "federatedId": 0},
        "servings": list(servings),
    }}
    return json.dumps(conf, indent=4) + "\n"


# --------------------------------------------------------------------------------------------
# FATE 1.5 / 1.6: conf/service_conf.yaml (with work_mode)
# --------------------------------------------------------------------------------------------

SERVICE_CONF_16 = """\
work_mode: 1
use_registry: @use_registry@
use_deserialize_safe_module: false
fateflow:
  # give an address the other services can reach: it is handed to FATE-Serving
  # (which downloads models from it) and used for calls back into this server,
  # so neither 0.0.0.0 nor a loopback address works in a real cluster
  host: @host@
  http_port: @http_port@
  grpc_port: @grpc_port@
  # how federated calls reach the other parties:
  #   rollsite: through eggroll's rollsite (fate on eggroll, grpc)
  #   nginx: through nginx (fate on spark or eggroll, http or grpc)
  #   or another party's FATE Flow, written as a mapping:
  # proxy:
  #   name: fateflow
  #   host: xx
  #   http_port: xx
  #   grpc_port: xx
  proxy: rollsite
  # default, http or grpc
  protocol: default
fateboard:
  host: @host@
  port: 8080
database:
  name: fate_flow
  user: fate
  passwd: fate_dev
  host: 127.0.0.1
  port: 3306
  max_connections: 100
  stale_timeout: 30
zookeeper:
  hosts:@zk_hosts@
  use_acl: @use_acl@
  user: @zk_user@
  password: @zk_password@
default_engines:
  computing: eggroll
  federation: eggroll
  storage: eggroll
fate_on_standalone:
  standalone:
    cores_per_node: 20
    nodes: 1
fate_on_eggroll:
  clustermanager:
    cores_per_node: 16
    nodes: 1
  rollsite:
    host: @host@
    port: 9370
fate_on_spark:
  spark:
    # empty: use the SPARK_HOME environment variable
    home:
    cores_per_node: 20
    nodes: 2
  hdfs:
    name_node: hdfs://fate-cluster
    # empty means /
    path_prefix:
  rabbitmq:
    host: 127.0.0.1
    mng_port: 12345
    port: 5672
    user: fate
    password: fate
    # empty: conf/rabbitmq_route_table.yaml
    route_table:
  nginx:
    host: 127.0.0.1
    http_port: 9300
    grpc_port: 9310
model_store_address:
  storage: mysql
  name: model
  host: 127.0.0.1
  port: 3306
  user: fate
  passwd: fate_dev
  max_connections: 10
  stale_timeout: 10
# FATE-Serving servers that receive load and bind requests
# (ignored when use_registry is true: then they come from ZooKeeper)
servings:
  hosts:@servings@
fatemanager:
  host: 127.0.0.1
  port: 8001
  federatedId: 0
"""


# --------------------------------------------------------------------------------------------
# FATE 1.7 - 1.8: conf/service_conf.yaml (FATE-Flow code base, no work_mode)
# --------------------------------------------------------------------------------------------

SERVICE_CONF_18 = """\
use_registry: @use_registry@
use_deserialize_safe_module: false
dependent_distribution: false
fateflow:
  # give an address the other services can reach: it is handed to FATE-Serving
  # (which downloads models from it) and used for calls back into this server,
  # so neither 0.0.0.0 nor a loopback address works in a real cluster
  host: @host@
  http_port: @http_port@
  grpc_port: @grpc_port@
  # set both to make clients sign their HTTP requests
  http_app_key:
  http_secret_key:
  # how federated calls reach the other parties:
  #   rollsite: through eggroll's rollsite (fate on eggroll, grpc)
  #   nginx: through nginx (fate on spark or eggroll, http or grpc)
  #   or another party's FATE Flow, written as a mapping:
  # proxy:
  #   name: fateflow
  #   host: xx
  #   http_port: xx
  #   grpc_port: xx
  proxy: rollsite
  # default, http or grpc
  protocol: default
database:
  name: fate_flow
  user: fate
  passwd: fate_dev
  host: 127.0.0.1
  port: 3306
  max_connections: 100
  stale_timeout: 30
zookeeper:
  hosts:@zk_hosts@
  use_acl: @use_acl@
  user: @zk_user@
  password: @zk_password@
# engines used when a job does not name its own
default_engines:
  computing: eggroll
  federation: eggroll
  storage: eggroll
fate_on_standalone:
  standalone:
    cores_per_node: 20
    nodes: 1
fate_on_eggroll:
  clustermanager:
    cores_per_node: 16
    nodes: 1
  rollsite:
    host: @host@
    port: 9370
fate_on_spark:
  spark:
    # empty: use the SPARK_HOME environment variable
    home:
    cores_per_node: 20
    nodes: 2
  linkis_spark:
    cores_per_node: 20
    nodes: 2
    host: 127.0.0.1
    port: 9001
    token_code: MLSS
    python_path: /data/projects/fate/python
  hive:
    host: 127.0.0.1
    port: 10000
    auth_mechanism:
    username:
    password:
  linkis_hive:
    host: 127.0.0.1
    port: 9001
  hdfs:
    name_node: hdfs://fate-cluster
    # empty means /
    path_prefix:
  rabbitmq:
    host: 127.0.0.1
    mng_port: 12345
    port: 5672
    user: fate
    password: fate
    # empty: conf/rabbitmq_route_table.yaml
    route_table:
  pulsar:
    host: 127.0.0.1
    port: 6650
    mng_port: 8080
    cluster: standalone
    # all parties must use the same tenant
    tenant: fl-tenant
    # message ttl in minutes
    topic_ttl: 5
    # empty: conf/pulsar_route_table.yaml
    route_table:
  nginx:
    host: 127.0.0.1
    http_port: 9300
    grpc_port: 9310
# copy models to model_store_address after each job
enable_model_store: false
model_store_address:
  storage: mysql
  database: fate_model
  user: fate
  password: fate_dev
  host: 127.0.0.1
  port: 3306
  # other keys are passed to the database driver as they are
  max_connections: 10
  stale_timeout: 10
# FATE-Serving servers that receive load and bind requests
# (ignored when use_registry is true: then they come from ZooKeeper)
servings:
  hosts:@servings@
fatemanager:
  host: 127.0.0.1
  port: 8001
  federatedId: 0
fateboard:
  host: @host@
  port: 8080
"""


# --------------------------------------------------------------------------------------------
# FATE 1.9 - 1.11: conf/service_conf.yaml (adds party_id, auth, nginx, instance id)
# --------------------------------------------------------------------------------------------

SERVICE_CONF_111 = """\
use_registry: @use_registry@
use_deserialize_safe_module: false
dependent_distribution: false
encrypt_password: false
encrypt_module: fate_arch.common.encrypt_utils#pwdecrypt
private_key:
party_id: @party_id@
hook_module:
  client_authentication: fate_flow.hook.flow.client_authentication
  site_authentication: fate_flow.hook.flow.site_authentication
  permission: fate_flow.hook.flow.permission
hook_server_name:
authentication:
  client:
    switch: false
    http_app_key:
    http_secret_key:
  site:
    switch: false
permission:
  switch: false
  component: false
  dataset: false
fateflow:
  # give an address the other services can reach: it is handed to FATE-Serving
  # (which downloads models from it) and used for calls back into this server,
  # so neither 0.0.0.0 nor a loopback address works in a real cluster
  host: @host@
  http_port: @http_port@
  grpc_port: @grpc_port@
  # a load balancer in front of several FATE Flow servers; when set, its
  # address is the one published to ZooKeeper
  nginx:
    host:
    http_port:
    grpc_port:
  # true: a new instance id at every start (several servers on one host)
  random_instance_id: false
  # set both to make clients sign their HTTP requests
  http_app_key:
  http_secret_key:
  # how federated calls reach the other parties:
  #   rollsite: through eggroll's rollsite (fate on eggroll, grpc)
  #   nginx: through nginx (fate on spark or eggroll, http or grpc)
  #   or another party's FATE Flow, written as a mapping:
  # proxy:
  #   name: fateflow
  #   host: xx
  #   http_port: xx
  #   grpc_port: xx
  proxy: rollsite
  # default, http or grpc
  protocol: default
database:
  name: fate_flow
  user: fate
  passwd: fate_dev
  host: 127.0.0.1
  port: 3306
  max_connections: 100
  stale_timeout: 30
zookeeper:
  hosts:@zk_hosts@
  use_acl: @use_acl@
  user: @zk_user@
  password: @zk_password@
# engines used when a job does not name its own
default_engines:
  computing: eggroll
  federation: eggroll
  storage: eggroll
fate_on_standalone:
  standalone:
    cores_per_node: 20
    nodes: 1
fate_on_eggroll:
  clustermanager:
    cores_per_node: 16
    nodes: 1
  rollsite:
    host: @host@
    port: 9370
fate_on_spark:
  spark:
    # empty: use the SPARK_HOME environment variable
    home:
    cores_per_node: 20
    nodes: 2
  linkis_spark:
    cores_per_node: 20
    nodes: 2
    host: 127.0.0.1
    port: 9001
    token_code: MLSS
    python_path: /data/projects/fate/python
  hive:
    host: 127.0.0.1
    port: 10000
    auth_mechanism:
    username:
    password:
  linkis_hive:
    host: 127.0.0.1
    port: 9001
  hdfs:
    name_node: hdfs://fate-cluster
    # empty means /
    path_prefix:
  rabbitmq:
    host: 127.0.0.1
    mng_port: 12345
    port: 5672
    user: fate
    password: fate
    # empty: conf/rabbitmq_route_table.yaml
    route_table:
    # mode: replication / client, default: replication
    mode: replication
    max_message_size: 1048576
  pulsar:
    host: 127.0.0.1
    port: 6650
    mng_port: 8080
    cluster: standalone
    # all parties must use the same tenant
    tenant: fl-tenant
    # message ttl in minutes
    topic_ttl: 30
    # empty: conf/pulsar_route_table.yaml
    route_table:
    # mode: replication / client, default: replication
    mode: replication
    max_message_size: 1048576
  nginx:
    host: 127.0.0.1
    http_port: 9300
    grpc_port: 9310
# copy models to model_store_address after each job
enable_model_store: false
model_store_address:
  storage: mysql
  database: fate_model
  user: fate
  password: fate_dev
  host: 127.0.0.1
  port: 3306
  # other keys are passed to the database driver as they are
  max_connections: 10
  stale_timeout: 10
# FATE-Serving servers that receive load and bind requests
# (ignored when use_registry is true: then they come from ZooKeeper)
servings:
  hosts:@servings@
fatemanager:
  host: 127.0.0.1
  port: 8001
  federatedId: 0
fateboard:
  host: @host@
  port: 8080
"""


# --------------------------------------------------------------------------------------------
# fate.env (FATE 1.5+)
# --------------------------------------------------------------------------------------------

FATE_ENV = """\
FATE=@fate@
FATEFlow=@flow@
FATEBoard=@board@
EGGROLL=@eggroll@
CENTOS=7.2
UBUNTU=@ubuntu@
PYTHON=@python@
MAVEN=3.6.3
JDK=8
SPARK=@spark@
"""

# Component versions of the releases the profiles stand for (FATEBoard, EGGROLL, PYTHON, SPARK, UBUNTU).
FATE_ENV_COMPONENTS = {
    "1.6": dict(board="1.6.1", eggroll="2.2.3", python="3.6.5", spark="2.4.1", ubuntu="16.04"),
    "1.8": dict(board="1.8.0", eggroll="2.4.3", python="3.6.5", spark="3.1.2", ubuntu="16.04"),
    "1.11": dict(board="1.11.1", eggroll="2.5.3", python="3.8.13", spark="3.3.1", ubuntu="20.04"),
}


# --------------------------------------------------------------------------------------------
# bin/init_env.sh and the FATE Flow service script
# --------------------------------------------------------------------------------------------

INIT_ENV = """\
#!/bin/bash
# Environment of this FATE install (sandbox): sourced by FATE Flow's service.sh.
fate_project_base=@home_q@
export FATE_PROJECT_BASE="${fate_project_base}"
export FATE_DEPLOY_BASE="${fate_project_base}"
# the emulators' package stands in for python/ of a real install
export PYTHONPATH=@sandbox_q@
venv=@venv_q@
export PATH="${venv}/bin:${PATH}"
export FATE_LOG_LEVEL=INFO
"""

SERVICE_SH = r"""#!/bin/bash
#
#  FATE Flow service control for this install (sandbox edition, written by fate_sandbox).
#
#  usage: service.sh {start|starting|stop|status|restart}
#    start      run FATE Flow in the background (nohup); logs go to console.log/error.log
#    starting   run FATE Flow in the foreground (exec), for supervisord
#    stop       stop the server listening on the configured ports (SIGTERM, then SIGKILL)
#    status     show the server's process and its listening sockets
#    restart    stop, then start
#
PROJECT_BASE=@home_q@
FATE_PROFILE=@profile_q@
PYTHON=@python_q@
CONF_FILE=@conf_q@
FLOW_SECTION=@section_q@
LOG_DIR=@log_dir_q@
DEFAULT_HOST=@host_q@
DEFAULT_HTTP_PORT=@http_port@
DEFAULT_GRPC_PORT=@grpc_port@

if [[ -f "${PROJECT_BASE}/bin/init_env.sh" ]]; then
    # shellcheck source=/dev/null
    source "${PROJECT_BASE}/bin/init_env.sh"
fi
export PYTHONPATH=@sandbox_q@

# host and ports as the config file says now (it may have been edited since install)
read_conf() {
    local values
    values=$("${PYTHON}" - "${CONF_FILE}" "${FLOW_SECTION}" 2>/dev/null <<'EOF'
import sys
import yaml
with open(sys.argv[1]) as f:
    section = (yaml.safe_load(f) or {}).get(sys.argv[2]) or {}
print("|".join(str(section.get(key) or "") for key in ("host", "http_port", "grpc_port")))
EOF
)
    IFS='|' read -r host http_port grpc_port <<<"${values}"
    host=${host:-${DEFAULT_HOST}}
    http_port=${http_port:-${DEFAULT_HTTP_PORT}}
    grpc_port=${grpc_port:-${DEFAULT_GRPC_PORT}}
    if [[ "${host}" == "0.0.0.0" ]]; then
        host=""
    fi
}

# pid of the process listening on host:port (lsof, else ss)
pid_on_port() {
    local found=""
    if command -v lsof >/dev/null 2>&1; then
        if [[ -n "$1" ]]; then
            found=$(lsof -nP -t -sTCP:LISTEN -iTCP@"$1":"$2" 2>/dev/null | head -n 1)
        else
            found=$(lsof -nP -t -sTCP:LISTEN -iTCP:"$2" 2>/dev/null | head -n 1)
        fi
    fi
    if [[ -z "${found}" ]] && command -v ss >/dev/null 2>&1; then
        found=$(ss -Hltnp "sport = :$2" 2>/dev/null | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p' | head -n 1)
    fi
    echo "${found}"
}

getpid() {
    local http_pid grpc_pid
    http_pid=$(pid_on_port "${host}" "${http_port}")
    grpc_pid=$(pid_on_port "${host}" "${grpc_port}")
    pid=${http_pid:-${grpc_pid}}
    if [[ -n "${http_pid}" && -n "${grpc_pid}" && "${http_pid}" != "${grpc_pid}" ]]; then
        echo "warning: http port ${http_port} (pid ${http_pid}) and grpc port ${grpc_port} (pid ${grpc_pid}) belong to different processes" >&2
    fi
}

mklogsdir() {
    if [[ ! -d "${LOG_DIR}" ]]; then
        mkdir -p "${LOG_DIR}"
    fi
}

status() {
    getpid
    if [[ -n "${pid}" ]]; then
        echo "status:"
        ps -o pid,user,etime,args -p "${pid}" | sed 's/^/    /'
        echo "listening:"
        if command -v lsof >/dev/null 2>&1; then
            lsof -nP -a -p "${pid}" -iTCP -sTCP:LISTEN 2>/dev/null | sed 's/^/    /'
        else
            ss -Hltnp 2>/dev/null | grep "pid=${pid}," | sed 's/^/    /'
        fi
    else
        echo "service not running"
    fi
}

start() {
    getpid
    if [[ -n "${pid}" ]]; then
        echo "service already started. pid: ${pid}"
        return 0
    fi
    mklogsdir
    nohup "${PYTHON}" -m fate_sandbox.flow --home "${PROJECT_BASE}" --version "${FATE_PROFILE}" \
        >>"${LOG_DIR}/console.log" 2>>"${LOG_DIR}/error.log" </dev/null &
    local child=$!
    for ((i = 1; i <= 100; i++)); do
        sleep 0.1
        getpid
        if [[ -n "${pid}" ]]; then
            echo "service start sucessfully. pid: ${pid}"
            return 0
        fi
        if ! kill -0 "${child}" 2>/dev/null; then
            break
        fi
    done
    echo "service start failed, please check ${LOG_DIR}/error.log and ${LOG_DIR}/console.log"
    return 1
}

starting() {
    getpid
    if [[ -n "${pid}" ]]; then
        echo "service already started. pid: ${pid}"
        exit 1
    fi
    mklogsdir
    exec "${PYTHON}" -m fate_sandbox.flow --home "${PROJECT_BASE}" --version "${FATE_PROFILE}"
}

stop() {
    getpid
    if [[ -z "${pid}" ]]; then
        echo "service not running"
        return 0
    fi
    echo "killing: $(ps -o pid=,args= -p "${pid}")"
    kill -15 "${pid}" 2>/dev/null
    for ((i = 1; i <= 100; i++)); do
        sleep 0.1
        getpid
        if [[ -z "${pid}" ]]; then
            echo "killed by SIGTERM"
            return 0
        fi
    done
    if kill -9 "${pid}" 2>/dev/null; then
        for ((i = 1; i <= 50; i++)); do
            sleep 0.1
            getpid
            if [[ -z "${pid}" ]]; then
                echo "killed by SIGKILL"
                return 0
            fi
        done
    fi
    echo "kill error: ${pid} still listens"
    return 1
}

read_conf

case "$1" in
    start)
        start
        status
        ;;
    starting)
        starting
        ;;
    stop)
        stop
        ;;
    status)
        status
        ;;
    restart)
        stop || exit 1
        sleep 1
        start
        status
        ;;
    *)
        echo "usage: $0 {start|starting|stop|status|restart}"
        exit 1
        ;;
esac
"""


# --------------------------------------------------------------------------------------------
# FATE-Serving: conf/serving-server.properties
# --------------------------------------------------------------------------------------------

SERVING_PROPERTIES = """\
# FATE-Serving server configuration (fate-serving-server 2.1, sandbox emulator)
#
# ---- this server ----
party.id=@party_id@
ip=@ip@
# gRPC port: FATE Flow publishes (load, bind) models here
port=@port@
# serving-proxy HTTP port: online inference requests, also from the other parties
proxy.port=@proxy_port@
# serving-proxy used for federated inference when the ZooKeeper router is off
proxy=@ip@:@proxy_port@
#serviceRoleName=serving
#
# ---- caches ----
#remoteModelInferenceResultCacheSwitch=false
cache.type=local
#model.cache.path=
#local.cache.maxsize=10000
#local.cache.expire=30
#local.cache.interval=3
#redis.ip=127.0.0.1
#redis.port=6379
#redis.password=fate_dev
#redis.timeout=10
#redis.expire=3000
#redis.maxTotal=100
#redis.maxIdle=100
#
# ---- feature data adaptors ----
feature.single.adaptor=com.webank.ai.fate.serving.adaptor.dataaccess.MockAdapter
feature.batch.adaptor=com.webank.ai.fate.serving.adaptor.dataaccess.MockBatchAdapter
#
# ---- thread pool ----
serving.core.pool.size=4
serving.max.pool.size=16
serving.pool.alive.time=1000
serving.queue.size=100
#
# ---- model loading ----
# FATE Flow endpoint serving downloads a model from when the load request has no
# file path and no provider is registered in ZooKeeper
model.transfer.url=@transfer_url@
#
# ---- ZooKeeper (empty zk.url: no registry) ----
zk.url=@zk_url@
useRegister=@use_register@
useZkRouter=@use_register@
#
# ---- ZooKeeper ACL (digest) ----
acl.enable=@acl_enable@
acl.username=@acl_username@
acl.password=@acl_password@
"""
