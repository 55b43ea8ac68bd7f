"""`ray start` for the test clusters, every node on 127.0.0.1 only, patient on a loaded machine.

With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray keeps every address on 127.0.0.1 but `ray start
--address` refuses to join a cluster; with 1 it joins, but turns 127.0.0.1 (the head's address and
--node-ip-address alike) into the machine's outward address. This runs the real command with the
variable at 0 and only its join guard told that clusters are allowed. `ray start` also gives a
node's raylet a fixed 30 s to register, which two cores shared by many engineers can miss: the
lookup it polls waits up to 90 s here (a raylet that crashed is then retried sooner).
"""

import sys
import time
from types import SimpleNamespace
from typing import Any

from ray._private import ray_constants, services
from ray.scripts import scripts

REGISTER_SECONDS = 90.0
_get_node = services.get_node


def _patient_get_node(*args: Any, **kwargs: Any) -> Any:
    deadline = time.monotonic() + REGISTER_SECONDS
    while True:
        try:
            return _get_node(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


if __name__ == "__main__":
    services.get_node = _patient_get_node
    scripts.ray_constants = SimpleNamespace(**{**vars(ray_constants), "ENABLE_RAY_CLUSTER": True})  # type: ignore[assignment]
    sys.exit(scripts.main())
