"""Turn a sandbox federation.json into an Ansible inventory shaped like inventories/sandbox.

    from pipeline_inventory import write_inventory
    inventory_dir = write_inventory(fed, tmp_path / "inventory")
    # ansible-playbook -i <inventory_dir> playbooks/pipeline.yml

    PYTHONPATH=sandbox .venv/bin/python tests/sandbox/pipeline_inventory.py .sandbox/federation.json OUTDIR

The variable names are the ones inventories/sandbox uses (docs/pipeline.md): one inventory host per party
(`party<id>`) with `fate_party_id` (text), `fate_version`, `fate_flow_url`, `fate_home`, `fate_serving_proxy_url`,
the party's own sshd (address, port, key, known_hosts; Debian's /usr/bin/python3), or the local connection for a
sandbox started with --no-ssh; groups `fate_parties`, `fate_source`, `fate_destination` and
`party_<id>`; the job-role mapping and the model in group_vars/all.yml. Running this on the default sandbox's
federation.json reproduces inventories/sandbox apart from its comments and absolute paths.
"""
import json
import os
import sys

LOCAL_INTERPRETER = "{{ ansible_playbook_python }}"
# Over SSH the modules run with the host's Debian Python (requests, PyYAML, kazoo from Debian packages), as on a
# FATE host; interpreter discovery would pick a broken pyenv shim on the development machines.
SSH_INTERPRETER = "/usr/bin/python3"


def _ids(ids):
    return ",".join(str(i) for i in ids)


def host_name(party_id):
    return "party%s" % party_id


def connection_vars(party):
    """How Ansible reaches a party's host: its own sshd (the sandbox's default), else a local connection."""
    ssh = party.get("ssh")
    if not ssh:
        return {"ansible_connection": "local", "ansible_python_interpreter": LOCAL_INTERPRETER}
    return {"ansible_host": ssh["host"], "ansible_port": ssh["port"], "ansible_user": ssh["user"],
            "ansible_ssh_private_key_file": ssh["private_key"], "ansible_ssh_common_args": ssh["ssh_common_args"],
            "ansible_python_interpreter": SSH_INTERPRETER}


def inventory(fed, parties=None):
    """(hosts.yml data, group_vars/all.yml data) for a federation.json.

    `parties`: only these party ids (an operator's own inventory in a federation of several organisations;
    docs/two-organisations.md); default every party. The job-role defaults always name every party."""
    hosts, clusters = {}, {"source": {}, "destination": {}}
    party_groups = {}
    wanted = None if parties is None else set(str(p) for p in parties)
    unknown = (wanted or set()) - set(fed["parties"])
    if unknown:
        raise ValueError("parties %s are not in the federation (%s)" % (sorted(unknown), sorted(fed["parties"])))
    for party_id, party in fed["parties"].items():
        if wanted is not None and str(party_id) not in wanted:
            continue
        name = host_name(party_id)
        hosts[name] = {
            "fate_party_id": str(party_id),
            "fate_version": party["fate_version"],
            "fate_flow_url": party["flow_url"],
            "fate_home": party["fate_home"],
            "fate_serving_proxy_url": party["serving"]["proxy_url"],
        }
        hosts[name].update(connection_vars(party))
        party_groups["party_%s" % party_id] = {"hosts": {name: None}}
        clusters[party["cluster"]]["party_%s" % party_id] = None
    children = {"fate_parties": {"hosts": dict((name, None) for name in hosts)},
                "fate_source": {"children": clusters["source"]},
                "fate_destination": {"children": clusters["destination"]}}
    children.update(party_groups)
    hosts_yml = {"all": {"hosts": hosts, "children": children}}
    migration, model = fed["migration"], fed["model"]
    group_vars = {
        "fate_model_id": model["model_id"],
        "fate_model_version": model["deployed_version"],
        "fate_source_guest": _ids(migration["role"].get("guest", [])),
        "fate_source_host": _ids(migration["role"].get("host", [])),
        "fate_source_arbiter": _ids(migration["role"].get("arbiter", [])),
        "fate_destination_guest": _ids(migration["migrate_role"].get("guest", [])),
        "fate_destination_host": _ids(migration["migrate_role"].get("host", [])),
        "fate_destination_arbiter": _ids(migration["migrate_role"].get("arbiter", [])),
    }
    return hosts_yml, group_vars


def write_inventory(fed, directory, extra_group_vars=None, parties=None):
    """Write hosts.yml and group_vars/all.yml (JSON is YAML) under `directory`; returns its path as text.
    `parties`: only these party ids (see inventory())."""
    directory = str(directory)
    hosts_yml, group_vars = inventory(fed, parties)
    group_vars.update(extra_group_vars or {})
    os.makedirs(os.path.join(directory, "group_vars"), exist_ok=True)
    with open(os.path.join(directory, "hosts.yml"), "w") as handle:
        json.dump(hosts_yml, handle, indent=2)
    with open(os.path.join(directory, "group_vars", "all.yml"), "w") as handle:
        json.dump(group_vars, handle, indent=2)
    return directory


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pipeline_inventory.py FEDERATION_JSON OUTDIR")
    with open(sys.argv[1]) as f:
        print(write_inventory(json.load(f), sys.argv[2]))
