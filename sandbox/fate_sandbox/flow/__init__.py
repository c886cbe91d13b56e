"""FATE Flow 1.x emulator (HTTP API of /v1/model, /v1/version, /v1/server)."""
