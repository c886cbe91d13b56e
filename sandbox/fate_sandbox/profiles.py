"""FATE version profiles of the sandbox: where a FATE home keeps things, and how its Flow behaves.

Every behaviour difference between FATE Flow versions that the emulators reproduce is a field
here, named after what it changes, so the servers read `profile.<field>` rather than compare
version numbers. Facts come from ../shared/fate-flow-contract.md (group names G0..G4 there).
"""
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str                 # the profile a user picks: 1.4, 1.6, 1.8, 1.11
    fate_version: str         # FATE release the profile stands for (fate.env FATE=)
    flow_version: str         # FATE Flow release (fate.env FATEFlow=)
    group: str                # contract group: L (1.4), G2, G3, G4

    # Layout, relative to the FATE home (the install's project base, /data/projects/fate).
    conf_files: tuple         # the config file(s) FATE Flow reads at start
    flow_base: str            # where FATE Flow keeps model_local_cache, temp, logs
    temp_dir: str             # TEMP_DIRECTORY: archives written by migrate and export
    service_script: str       # FATE's service.sh for FATE Flow
    has_fate_env: bool        # fate.env with component versions

    # API surface.
    has_migrate: bool
    has_query: bool           # /model/query
    has_deploy: bool          # /model/deploy and the deployed-check on load
    has_transfer_path: bool   # /model/transfer/<party_model_id~>/<version>
    has_version_get: bool     # POST /v1/version/get
    has_server_version: bool  # POST /v1/server/version/get

    # Behaviour.
    blueprint_app: bool       # G3+: one Flask app; validate_request answers retcode 101
    flask2: bool              # G4: errors are repr(e); unknown paths answer 200/retcode 100
    sha1_sidecar: bool        # archives get <zip>.sha1 beside them (G2, G3)
    import_model_json: bool   # migrated archives carry import_model.json (1.8.0, G4)
    keeps_migrated_model: bool  # G4: migrate registers the new model and leaves it on disk
    import_conflict_409: bool   # G4: duplicate import is HTTP 409 unless force_update
    import_rewrites_ids: bool   # G4: import rewrites the pipeline ids to the request's
    uuid_upload_name: bool      # G4: uploads are saved under a uuid, not their filename
    str_party_ids_for_serving: bool  # 1.7.1+: party ids are str()-ed before serving's proto
    load_mode_from_work_mode: bool   # <=1.6: load's federated_mode comes from work_mode
    signing: bool             # 1.7+: HMAC request signing when an app key/secret is set
    per_model_zk: bool        # G2+: one ZooKeeper transfer node per model
    fate_flow_zk_instance: bool  # G4: /FATE-COMPONENTS/fate-flow instance node
    export_missing_status: int   # HTTP status of export of a missing model

    def path(self, home, *parts):
        return os.path.join(home, *parts)

    @property
    def model_local_cache(self):
        return os.path.join(self.flow_base, "model_local_cache") if self.flow_base else "model_local_cache"

    @property
    def logs_dir(self):
        return os.path.join(self.flow_base, "logs") if self.flow_base else "logs"

    @property
    def db_file(self):
        return os.path.join(self.flow_base, "fate_sqlite.db") if self.flow_base else "fate_flow_sqlite.db"

    @property
    def uses_service_conf(self):
        return self.conf_files == ("conf/service_conf.yaml",)

    def version_tuple(self):
        return tuple(int(x) for x in self.fate_version.split("."))


_COMMON = dict(has_fate_env=True, has_migrate=True, has_query=True, has_deploy=True,
               has_transfer_path=True, has_version_get=True, per_model_zk=True)

PROFILES = {
    "1.4": Profile(
        name="1.4", fate_version="1.4.5", flow_version="1.4.5", group="L",
        conf_files=("arch/conf/server_conf.json", "arch/conf/base_conf.yaml"),
        flow_base="", temp_dir="temp/fate_flow", service_script="fate_flow/service.sh",
        has_fate_env=False, has_migrate=False, has_query=False, has_deploy=False,
        has_transfer_path=False, has_version_get=True, has_server_version=False,
        blueprint_app=False, flask2=False, sha1_sidecar=False, import_model_json=False,
        keeps_migrated_model=False, import_conflict_409=False, import_rewrites_ids=False,
        uuid_upload_name=False, str_party_ids_for_serving=False, load_mode_from_work_mode=True,
        signing=False, per_model_zk=False, fate_flow_zk_instance=False, export_missing_status=210),
    "1.6": Profile(
        name="1.6", fate_version="1.6.1", flow_version="1.6.1", group="G2",
        conf_files=("conf/service_conf.yaml",), flow_base="", temp_dir="temp/fate_flow",
        service_script="python/fate_flow/service.sh", has_server_version=False,
        blueprint_app=False, flask2=False, sha1_sidecar=True, import_model_json=False,
        keeps_migrated_model=False, import_conflict_409=False, import_rewrites_ids=False,
        uuid_upload_name=False, str_party_ids_for_serving=False, load_mode_from_work_mode=True,
        signing=False, fate_flow_zk_instance=False, export_missing_status=210, **_COMMON),
    "1.8": Profile(
        name="1.8", fate_version="1.8.0", flow_version="1.8.0", group="G3",
        conf_files=("conf/service_conf.yaml",), flow_base="fateflow", temp_dir="fateflow/temp",
        service_script="fateflow/bin/service.sh", has_server_version=True,
        blueprint_app=True, flask2=False, sha1_sidecar=True, import_model_json=True,
        keeps_migrated_model=False, import_conflict_409=False, import_rewrites_ids=False,
        uuid_upload_name=False, str_party_ids_for_serving=True, load_mode_from_work_mode=False,
        signing=True, fate_flow_zk_instance=False, export_missing_status=210, **_COMMON),
    "1.11": Profile(
        name="1.11", fate_version="1.11.4", flow_version="1.11.2", group="G4",
        conf_files=("conf/service_conf.yaml",), flow_base="fateflow", temp_dir="fateflow/temp",
        service_script="fateflow/bin/service.sh", has_server_version=True,
        blueprint_app=True, flask2=True, sha1_sidecar=False, import_model_json=True,
        keeps_migrated_model=True, import_conflict_409=True, import_rewrites_ids=True,
        uuid_upload_name=True, str_party_ids_for_serving=True, load_mode_from_work_mode=False,
        signing=True, fate_flow_zk_instance=True, export_missing_status=404,
        **dict(_COMMON, has_version_get=False)),
}


def get(name):
    """The profile for a version name; accepts 1.11, 1.11.4 or v1.11."""
    key = str(name).lstrip("v")
    if key in PROFILES:
        return PROFILES[key]
    for profile in PROFILES.values():
        if key in (profile.fate_version, profile.flow_version) or key.startswith(profile.name + "."):
            return profile
    raise KeyError("unknown FATE version profile %r; choose one of %s" % (name, ", ".join(PROFILES)))
