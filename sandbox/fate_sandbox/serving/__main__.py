"""python -m fate_sandbox.serving --home <serving home>: run the FATE-Serving emulator until SIGTERM."""
import sys

from .server import main

sys.exit(main())
