"""FATE-Serving 2.1.x emulator (serving-server + serving-proxy of one party) for the sandbox federation.

Run: ``python -m fate_sandbox.serving --home <serving home>`` (foreground; SIGTERM/SIGINT stop it and it
exits 0; any startup failure exits 1 after logging why). Logs go to ``<home>/logs/serving.log``
(errors also to stderr). The ACL password is never logged.

Configuration, read once at start
---------------------------------
``<home>/conf/serving-server.properties`` (Java properties syntax):

====================== ============================================ ==============================================
key                    default                                      meaning
====================== ============================================ ==============================================
party.id               (empty)                                      this party's id (host side of party-to-party calls)
ip                     127.0.0.1                                    address both servers bind to and register
port                   8000                                         gRPC ModelService port
proxy.port             8059                                         serving-proxy HTTP port (inference, /health)
zk.url                 (empty = no registry)                        ZooKeeper ``host:port[,host:port]``
useRegister            true                                         register in ZooKeeper (only if zk.url is set)
acl.enable             false                                        digest auth + default digest ACL
acl.username           (empty)                                      required when acl.enable=true
acl.password           (empty)                                      required when acl.enable=true; never logged
model.transfer.url     http://127.0.0.1:9380/v1/model/transfer      last-resort FATE Flow transfer URL
feature.file           (empty)                                      host features CSV (relative to home)
model.cache.path       (empty = memory only)                        persist models in ``<this>/.fate/`` (relative
                                                                    to home) and restore them at start
zk.timeout             10000                                        ms to wait for ZooKeeper at start (sandbox key)
model.transfer.timeout 20000                                        ms for the model transfer POST (sandbox key)
single.inference.rpc.timeout 3000                                   ms for a guest->host call
====================== ============================================ ==============================================

``<home>/conf/route_table.json``: ``{"route_table": {"<party_id>": {"default": [{"ip": ..., "port":
<that party's proxy.port>}]}}}`` (a ``"default"`` party entry is the fallback). Re-read when it changes.
A partner with no route but the same party.id as this one is called on this emulator itself.

Without ``model.cache.path`` loaded models and bindings live in memory only: a restart loses them (as a
real serving-server whose local cache is gone) and FATE Flow must load and bind again.

gRPC: ``/com.webank.ai.fate.api.mlmodel.manager.ModelService/<method>``
-----------------------------------------------------------------------
publishLoad, publishBind, publishOnline (= bind), queryModel, unload, unbind. PublishResponse is
``statusCode``, ``message``, ``data`` = ``b"{}"``; ``error`` is always empty.

* publishLoad: local model = model[role'].roleModelInfo[local.partyId], role' = guest if local.role is
  guest else host; partners = the other role's parties. loadType "" / FATEFLOW pulls the model (see
  loader.py for the URL choice); FILE/CACHE -> 107 (not emulated); other -> 110 "No enum constant ...".
  Fetch failure of any kind -> 123 with FATE-Serving's exact message; missing map entries -> 110 "".
  Stored under ``tableName + "_" + namespace``; a second load of the same key replaces it.
* publishBind: blank serviceId -> 110 "param service id is blank"; one of ``? : / &`` -> 110
  ``Service id contains special characters, ["?",":","/","&"]``; model
  model[role'].roleModelInfo[role[role'].partyId[0]] not loaded -> 104 ``model <key> is not exist ``
  (trailing space). Success maps serviceId -> key (rebinding overwrites) and registers it in ZooKeeper.
* queryModel: queryType 0 all, 1 serviceId substring (case-insensitive, as real), 2 tableName+namespace;
  always retcode 0; modelInfos[{tableName, namespace, serviceIds, content (model JSON), index}].

Inference return codes (serving-proxy ``POST /federation/v1/inference`` and ``/batchInference``)
------------------------------------------------------------------------------------------------
Taken from FATE-Serving 2.1.6's code paths (GuestSingleParamInterceptor, GuestModelInterceptor,
HostModelInterceptor, ErrorMessageUtil, PipelineModelProcessor), not from its errorCode.md, whose
"1xxx guest / 2xxx host" table the 2.1.6 code does not follow for guest-side errors:

======= =============================================== ===================================================
retcode retmsg                                          when
======= =============================================== ===================================================
0       ""                                              success; data {score, modelId, modelVersion, timestamp}
100     "no service id"                                 head.serviceId missing or blank
110     "" (empty)                                      serviceId not bound (real: IllegalArgumentException
                                                        "model is null" -> SYSTEM_ERROR, retmsg unset);
                                                        data is {}; serving.log says which id
102     "feature data error: ..."                       a featureData value is not a number
105     "host <pid> remote error : <reason>"            host unreachable / no route / bad answer
2104    "host return code 104 host msg :mode is null"   host has not loaded the model (sic "mode")
2113    "host return code 113 host msg :adaptor return error"  id not in the host's feature.file
======= =============================================== ===================================================

Failures after the model is found carry data {modelId, modelVersion, timestamp} (real postProcess).
"""
