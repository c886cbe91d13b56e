"""python -m fate_sandbox.serving --home <serving home>: run the FATE-Serving emulator until SIGTERM."""
import logging
import os
import sys

from .server import main

CODE = main()
# Everything is closed by now (ZooKeeper session, servers, log files). Do not wait for a gRPC worker
# that may still be inside a model transfer request.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(CODE)  # pylint: disable=protected-access
