"""Pulling a model from FATE Flow, as FATE-Serving 2.1.x's FateFlowModelLoader does.

URL choice: a non-blank `filePath` from the publishLoad request (URL-decoded); otherwise, with the
registry on, a ZooKeeper child of /FATE-SERVICES/flow/online/transfer/providers whose decoded name ends
with `/<namespace, '#' -> '~'>/<tableName>` (FATE Flow 1.5.2+ per-model node), else any provider that is
a generic `.../v1/model/transfer` URL (FATE Flow <=1.6 startup node; the one at `model.transfer.url`'s
address first, since all the sandbox's Flows share one ZooKeeper); otherwise `model.transfer.url`.
The request is `POST {"name": tableName, "namespace": namespace}`; a usable answer has retcode 0 (or none)
and a non-empty `data` map of base64 strings.
"""
import json
import logging
import urllib.error
import urllib.parse
import urllib.request

LOG = logging.getLogger("fate_sandbox.serving")

TRANSFER_PROVIDERS = "/FATE-SERVICES/flow/online/transfer/providers"

# Loopback traffic must not go through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_json(url, payload, timeout):
    """POST JSON and return (http status, parsed JSON or None). Raises OSError on transport failure."""
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json;charset=UTF-8"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
        exc.close()
    try:
        return status, json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return status, None


class FlowModelLoader:
    def __init__(self, config, registry=None):
        self.config = config
        self.registry = registry

    def resolve_url(self, table_name, namespace, file_path=""):
        if file_path and file_path.strip():
            return urllib.parse.unquote_plus(file_path.strip())
        if self.registry is not None:
            children = self.registry.children(TRANSFER_PROVIDERS)
            suffix = "/%s/%s" % (namespace.replace("#", "~"), table_name)
            decoded = [urllib.parse.unquote(child) for child in children]
            for url in decoded:
                if url.endswith(suffix):
                    return url
            generic = [url for url in decoded if url.split("?", 1)[0].rstrip("/").endswith("/v1/model/transfer")]
            if generic:
                # Real serving takes whichever provider its router picks; in the sandbox every party's
                # Flow shares one ZooKeeper, so prefer the one at model.transfer.url's address.
                own = urllib.parse.urlparse(self.config.model_transfer_url).netloc
                generic.sort(key=lambda url: urllib.parse.urlparse(url).netloc != own)
                return generic[0]
            LOG.info("no transfer provider for %s/%s in ZooKeeper (%d children)", namespace, table_name,
                     len(children))
        return self.config.model_transfer_url

    def fetch(self, url, table_name, namespace):
        """The transfer payload {key: base64}, or None when the model cannot be had (logged)."""
        LOG.info("read model, name: %s namespace: %s, url: %s", table_name, namespace, url)
        try:
            status, doc = post_json(url, {"name": table_name, "namespace": namespace},
                                    self.config.transfer_timeout)
        except (OSError, ValueError) as exc:
            LOG.error("get model info from fateflow error: %s: %s", url, exc)
            return None
        if not isinstance(doc, dict):
            LOG.error("read model fail, %s, %s: HTTP %s, no JSON body", table_name, namespace, status)
            return None
        retcode = doc.get("retcode")
        if retcode is not None and retcode != 0:
            LOG.error("read model fail, %s, %s: HTTP %s retcode %s %s", table_name, namespace, status, retcode,
                      doc.get("retmsg"))
            return None
        data = doc.get("data")
        if not isinstance(data, dict) or not data:
            LOG.error("read model fail, %s, %s: empty data (HTTP %s)", table_name, namespace, status)
            return None
        return data
