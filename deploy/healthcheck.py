"""Container health check: exit 0 when a gRPC health Check for SERVICE at ADDRESS says SERVING.

Usage: python /app/bin/healthcheck.py [ADDRESS] [SERVICE]   (defaults: 127.0.0.1:50061, "")
Health needs no token. Used by deploy/compose.yaml; Kubernetes uses its native gRPC probes.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str, timeout: float = 2.0) -> bool:
    """Tell whether `service` at `address` reports SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"healthcheck: {address} {service!r}: {error.code().name}", file=sys.stderr)
            return False
    serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"healthcheck: {address} {service!r}: {status}", file=sys.stderr)
    return serving


def main(argv: list[str]) -> int:
    """Run one check; the exit code is what Docker reads."""
    address = argv[1] if len(argv) > 1 else "127.0.0.1:50061"
    service = argv[2] if len(argv) > 2 else ""
    return 0 if check(address, service) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
