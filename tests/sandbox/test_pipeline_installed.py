"""The pipeline from the built and installed collection, by FQCN (issue #6).

`ansible-galaxy collection build` of the checkout (galaxy.yml's build_ignore applied), `ansible-galaxy collection
install <tarball> -p <tmp>/collections`, then `ansible-playbook fate.flow.pipeline -i <inventory>` from a directory
outside the checkout with ANSIBLE_COLLECTIONS_PATH pointing only at that install (no build/, no staged copy), on the
default sandbox (1.6 -> 1.11). Also checks what the tarball ships: the collection's content and no development files,
and that the example AWX project of docs/examples/awx-project resolves against the installed collection.
"""
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from ansible_helpers import PLAYBOOK_BIN, ansible_env
from conftest import PYTHON, REPO
from pipeline_inventory import write_inventory

GALAXY_BIN = os.path.join(os.path.dirname(PYTHON), "ansible-galaxy")
# Development content a shipped collection must not hold (paths relative to the collection root).
DEV_PREFIXES = (".venv/", ".sandbox/", ".cache/", ".ci/", ".git/", ".pytest_cache/", "build/", "sandbox/",
                "bench/", "scripts/", "requirements/", "tests/sandbox/", "tests/output/", "inventories/sandbox/",
                "docs/dev/")
DEV_FILES = ("Makefile", "ansible.cfg", ".gitignore")
SHIPPED = ("galaxy.yml", "MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml",
           "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
           "playbooks/pipeline.yml", "playbooks/migrate.yml", "playbooks/publish.yml", "playbooks/vars/pipeline.yml",
           "roles/migrate/meta/argument_specs.yml", "roles/transfer/tasks/main.yml", "roles/import/tasks/main.yml",
           "plugins/modules/model_migrate.py", "plugins/action/model_transfer.py",
           "inventories/example/hosts.yml", "docs/awx.md", "docs/two-organisations.md",
           "docs/examples/awx-project/collections/requirements.yml", "tests/sanity/ignore-2.19.txt")


def _run(args, cwd, env=None, timeout=300):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, "%s failed:\n%s%s" % (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tarball, collections path) of the collection built from the checkout and installed from the tarball."""
    root = tmp_path_factory.mktemp("installed")
    collections = str(root / "collections")
    # Only the target is a collections path: an installed or staged fate.flow elsewhere would make the install
    # "Nothing to do".
    env = ansible_env(str(root), ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False")
    _run([GALAXY_BIN, "collection", "build", "--output-path", str(root / "dist"), REPO], cwd=str(root), env=env)
    tarballs = os.listdir(str(root / "dist"))
    assert len(tarballs) == 1 and tarballs[0].startswith("fate-flow-"), tarballs
    tarball = str(root / "dist" / tarballs[0])
    _run([GALAXY_BIN, "collection", "install", "--offline", tarball, "-p", collections], cwd=str(root), env=env)
    return tarball, collections


def test_tarball_ships_the_collection_and_no_dev_files(installed):
    tarball, collections = installed
    with tarfile.open(tarball) as archive:
        names = [name[2:] if name.startswith("./") else name for name in archive.getnames()]
    entries = set(names) | set(name + "/" for name in names)
    dev = sorted(n for n in entries if n.startswith(DEV_PREFIXES) or n in DEV_FILES
                 or "__pycache__" in n or n.endswith(".pyc"))
    assert not dev, dev
    missing = [n for n in SHIPPED if n not in names and n != "galaxy.yml"]
    assert not missing, missing
    with open(os.path.join(collections, "ansible_collections", "fate", "flow", "MANIFEST.json")) as handle:
        manifest = json.load(handle)["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("fate", "flow")
    # Every file the execution-environment definition names is in the collection.
    base = os.path.join(collections, "ansible_collections", "fate", "flow")
    import yaml
    with open(os.path.join(base, "meta", "execution-environment.yml")) as handle:
        ee = yaml.safe_load(handle)
    for key in ("python", "system"):
        assert os.path.isfile(os.path.join(base, ee["dependencies"][key])), ee["dependencies"][key]


def test_example_awx_project_resolves_against_the_installed_collection(installed, tmp_path):
    """docs/examples/awx-project: its requirements name fate.flow, and its playbooks pass a syntax check with the
    installed collection (what AWX does after installing collections/requirements.yml)."""
    _tarball, collections = installed
    project = str(tmp_path / "project")
    shutil.copytree(os.path.join(REPO, "docs", "examples", "awx-project"), project)
    import yaml
    with open(os.path.join(project, "collections", "requirements.yml")) as handle:
        requirements = yaml.safe_load(handle)
    assert [c["name"] for c in requirements["collections"]] == ["fate.flow"]
    env = ansible_env(str(tmp_path), ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False")
    playbooks = sorted(n for n in os.listdir(project) if n.endswith(".yml"))
    assert playbooks
    for name in playbooks:
        _run([PLAYBOOK_BIN, "--syntax-check", "-i", os.path.join(project, "inventories", "production"), name],
             cwd=project, env=env)


def test_pipeline_from_the_installed_collection(installed, sandbox, tmp_path):
    _tarball, collections = installed
    fed = sandbox()
    inventory = write_inventory(fed, tmp_path / "inventory")
    version = "installed_%d" % int(time.time())
    report_dir = str(tmp_path / "reports")
    vars_file = str(tmp_path / "vars.json")
    with open(vars_file, "w") as handle:
        json.dump({"fate_unify_model_version": version, "fate_report_dir": report_dir}, handle)
    env = ansible_env(str(tmp_path), ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
                      FATE_RESULTS_FILE=str(tmp_path / "results.json"))
    proc = subprocess.run([PLAYBOOK_BIN, "fate.flow.pipeline", "-i", inventory, "-e", "@" + vars_file, "-v"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    # The only fate.flow this environment can see is the installed one (not the checkout, build/ or a staged copy).
    listed = _run([GALAXY_BIN, "collection", "list", "fate.flow", "--format", "json"], cwd=str(tmp_path), env=env)
    assert list(json.loads(listed.stdout)) == [os.path.join(collections, "ansible_collections")], listed.stdout
    with open(os.path.join(report_dir, "fate_flow_%s.json" % version)) as handle:
        report = json.load(handle)
    assert report["operation"] == "pipeline"
    assert sorted((p["role"], p["old_party_id"], p["new_party_id"], p["migrate_status"], p["import_status"])
                  for p in report["parties"]) == [
        ("arbiter", "10000", "100", "migrated", "imported"), ("guest", "9999", "99", "migrated", "imported"),
        ("host", "10000", "100", "migrated", "imported")]
    assert report["publish"]["bind_status"] == "bound"
    assert report["inference"]["retcode"] == 0
