"""t_machine_learning_model_info, FATE Flow's model table, in a SQLite file of the FATE home."""
import json
import sqlite3
import threading
import time

COLUMNS = ("f_role", "f_party_id", "f_roles", "f_job_id", "f_model_id", "f_model_version", "f_size",
           "f_initiator_role", "f_initiator_party_id", "f_runtime_conf", "f_train_dsl", "f_train_runtime_conf",
           "f_runtime_conf_on_party", "f_inference_dsl", "f_fate_version", "f_parent", "f_parent_info",
           "f_loaded_times", "f_imported", "f_description", "f_job_status", "f_archive_sha256",
           "f_archive_from_ip", "f_create_time", "f_create_date", "f_update_time", "f_update_date")
_JSON_COLUMNS = {"f_roles", "f_runtime_conf", "f_train_dsl", "f_train_runtime_conf", "f_runtime_conf_on_party",
                 "f_inference_dsl", "f_parent_info"}
_KEY = ("f_role", "f_party_id", "f_model_id", "f_model_version")


class ModelTable:
    def __init__(self, path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        cols = ", ".join("%s TEXT" % c for c in COLUMNS)
        self._db.execute("CREATE TABLE IF NOT EXISTS t_machine_learning_model_info (%s, PRIMARY KEY (%s))"
                         % (cols, ", ".join(_KEY)))

    def find(self, **filters):
        where, args = [], []
        for key, value in filters.items():
            if value is None:
                continue
            where.append("f_%s = ?" % key)
            args.append(str(value))
        sql = "SELECT %s FROM t_machine_learning_model_info" % ", ".join(COLUMNS)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY f_create_time", args).fetchall()
        return [self._decode(dict(zip(COLUMNS, row))) for row in rows]

    def save(self, row):
        """Insert or update by (role, party_id, model_id, model_version)."""
        now = int(time.time() * 1000)
        row = dict(row)
        row.setdefault("f_create_time", now)
        row.setdefault("f_create_date", time.strftime("%Y-%m-%d %H:%M:%S"))
        row["f_update_time"] = now
        row["f_update_date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        values = {c: self._encode(c, row.get(c)) for c in COLUMNS}
        with self._lock:
            existing = self._db.execute(
                "SELECT f_create_time, f_create_date, f_loaded_times FROM t_machine_learning_model_info WHERE "
                + " AND ".join("%s = ?" % k for k in _KEY), [values[k] for k in _KEY]).fetchone()
            if existing:
                values["f_create_time"], values["f_create_date"] = existing[0], existing[1]
                values["f_loaded_times"] = existing[2]
            self._db.execute("INSERT OR REPLACE INTO t_machine_learning_model_info (%s) VALUES (%s)"
                             % (", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))), [values[c] for c in COLUMNS])

    def increment_loaded(self, role, party_id, model_id, model_version):
        with self._lock:
            self._db.execute("UPDATE t_machine_learning_model_info SET f_loaded_times = "
                             "CAST(COALESCE(f_loaded_times, '0') AS INTEGER) + 1 WHERE f_role = ? AND "
                             "f_party_id = ? AND f_model_id = ? AND f_model_version = ?",
                             [role, str(party_id), model_id, model_version])

    def delete(self, **filters):
        where = " AND ".join("f_%s = ?" % k for k in filters)
        with self._lock:
            self._db.execute("DELETE FROM t_machine_learning_model_info WHERE " + where,
                             [str(v) for v in filters.values()])

    @staticmethod
    def _encode(column, value):
        if value is None:
            return None
        if column in _JSON_COLUMNS:
            return json.dumps(value)
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)

    @staticmethod
    def _decode(row):
        out = {}
        for key, value in row.items():
            if value is not None and key in _JSON_COLUMNS:
                value = json.loads(value)
            elif value is not None and key in ("f_loaded_times", "f_imported", "f_size", "f_create_time",
                                               "f_update_time", "f_initiator_party_id"):
                value = int(value) if value.lstrip("-").isdigit() else value
            elif key == "f_parent" and value is not None:
                value = value == "1"
            out[key] = value
        return out
