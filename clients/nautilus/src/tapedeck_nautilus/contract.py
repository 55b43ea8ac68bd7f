"""The part of Tapedeck's contract this package speaks, generated into `_contract` at set-up."""

from tapedeck_nautilus._contract.tapedeck.common.v1 import common_pb2
from tapedeck_nautilus._contract.tapedeck.live.v1 import live_pb2, live_pb2_grpc

__all__ = ["common_pb2", "live_pb2", "live_pb2_grpc"]
