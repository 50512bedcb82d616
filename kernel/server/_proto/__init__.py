"""Generated protobuf and gRPC code of the postloan.v1 API (see regenerate.py)."""
