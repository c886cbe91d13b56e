"""The real FATE 1.x `flow` CLI (PyPI fate-client), installed in its own venv per version.

Install recipes are those of ../shared/flow-cli-wire.md §1: every release needs pins to run
on Python 3.11. The CLI keeps its server address inside the installed package (settings.yaml,
rewritten by `flow init`), so each call takes a lock on the venv: init + command run together.
"""
import contextlib
import fcntl
import glob
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("FATE_FLOW_CLI_CACHE", os.path.join(REPO, ".cache", "flow-cli"))

_OLD_DEPS = ["click>=7.1.2,<8.0.0", "flask>=1.0.2,<2.0.0", "loguru>=0.5.1,<0.6.0", "requests>=2.24.0,<3.0.0",
             "requests_toolbelt>=0.9.1,<0.10.0", "ruamel.yaml>=0.16.10,<0.17.0", "setuptools>=50.0,<51.0",
             "markupsafe<2.1", "urllib3<2"]
RECIPES = {
    "1.11.3": [["fate-client==1.11.3", "urllib3<2"]],
    "1.7.2": [["fate-client==1.7.2", "markupsafe<2.1", "urllib3<2"]],
    "1.5.3": [["--no-deps", "fate-client==1.5.3"], _OLD_DEPS],
}
NOISE = "Import torch failed"   # 1.11.x prints this on stdout before every answer


def ensure(version):
    """The path of the `flow` executable for a fate-client version, installing it on first use."""
    venv = os.path.join(CACHE, version)
    flow = os.path.join(venv, "bin", "flow")
    stamp = os.path.join(venv, ".installed")
    if os.path.exists(stamp):
        return flow
    os.makedirs(CACHE, exist_ok=True)
    with _locked(os.path.join(CACHE, ".install-%s.lock" % version)):
        if os.path.exists(stamp):
            return flow
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for args in RECIPES[version]:
            subprocess.run(pip + args, check=True)
        with open(stamp, "w") as f:
            f.write(version)
    return flow


@contextlib.contextmanager
def _locked(path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class FlowCLI:
    """One fate-client version; `run` points it at a flow and runs one command in `workdir`."""

    def __init__(self, version, workdir):
        self.version = version
        self.flow = ensure(version)
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)

    def init(self, ip, port, app_key=None, secret_key=None):
        """Point the CLI at a flow: write settings.yaml as `flow init --reset` then `flow init` would.

        Writing the file saves two CLI start-ups (each ~1.5 s for 1.11) per command; `init_with_cli`
        runs the real `flow init` for tests of the init command itself.
        """
        lines = ["api_version: v1", "ip: %s" % ip, "port: %s" % port, "server_conf_path:"]
        if not self.version.startswith("1.5"):
            lines += ["app_key: %s" % (app_key or ""), "secret_key: %s" % (secret_key or "")]
        with open(self.settings_path(), "w") as f:
            f.write("\n".join(lines) + "\n")

    def init_with_cli(self, ip, port, app_key=None, secret_key=None):
        args = ["init", "--ip", ip, "--port", str(port)]
        if not self.version.startswith("1.5"):
            self._exec(["init", "--reset"])
            if app_key:
                args += ["--app-key", app_key, "--secret-key", secret_key]
        return self._exec(args)

    def settings_path(self):
        venv = os.path.dirname(os.path.dirname(self.flow))
        found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "flow_client", "settings.yaml"))
        if not found:
            raise RuntimeError("flow_client/settings.yaml not found in %s" % venv)
        return found[0]

    def run(self, flow_url, args, app_key=None, secret_key=None):
        """Run `flow <args>` against flow_url (http://ip:port); returns (exit code, parsed JSON or None, stdout)."""
        ip, port = flow_url.split("://", 1)[1].rstrip("/").split(":")
        with _locked(os.path.join(os.path.dirname(os.path.dirname(self.flow)), ".run.lock")):
            self.init(ip, port, app_key, secret_key)
            return self._exec(args)

    def _exec(self, args):
        proc = subprocess.run([self.flow] + list(args), cwd=self.workdir, capture_output=True, text=True,
                              timeout=180, check=False)
        return proc.returncode, parse_output(proc.stdout), proc.stdout + proc.stderr


def parse_output(stdout):
    """The JSON the CLI printed, without the 1.11 torch notice; None when it printed no JSON."""
    lines = [line for line in stdout.splitlines() if not line.startswith(NOISE)]
    text = "\n".join(lines).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        start = text.find("{")
        try:
            return json.loads(text[start:]) if start >= 0 else None
        except ValueError:
            return None
