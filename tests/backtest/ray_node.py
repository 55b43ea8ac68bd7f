"""`ray start` for the test clusters, every node on 127.0.0.1 only.

With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray keeps every address on 127.0.0.1 but `ray start
--address` refuses to join a cluster; with 1 it joins, but turns 127.0.0.1 (the head's address and
--node-ip-address alike) into the machine's outward address. This runs the real command with the
variable at 0 and only its join guard told that clusters are allowed.
"""

import sys
from types import SimpleNamespace

from ray._private import ray_constants
from ray.scripts import scripts

if __name__ == "__main__":
    scripts.ray_constants = SimpleNamespace(**{**vars(ray_constants), "ENABLE_RAY_CLUSTER": True})  # type: ignore[assignment]
    sys.exit(scripts.main())
