"""The peer of bench_grpc.py: a bare grpcio server of the same shape as ``postloan serve``.

It answers ``/postloan.v1.DecisionService/Decide`` (or ``--method``, e.g.
``/postloan.v1.Ledger/CheckContact``) with a fixed, real response (the bytes given in
``--response``) without parsing the request: same method path, same message
sizes both ways, same thread pool and message-size options, own process — everything a
Decide call costs except the decision itself (no interceptors, no auth, no kernel).

    python bench/grpc_echo_peer.py --port 0 --response decide_response.bin   # prints "port N"
"""
from __future__ import annotations

import argparse
import signal
import sys
from concurrent import futures

import grpc

METHOD = "/postloan.v1.DecisionService/Decide"


def serve(port: int, response: bytes, threads: int = 16, host: str = "127.0.0.1",
          method: str = METHOD) -> tuple[grpc.Server, int]:
    def answer(request: bytes, context) -> bytes:
        return response

    service, name = method.strip("/").split("/")
    handler = grpc.method_handlers_generic_handler(service, {name: grpc.unary_unary_rpc_method_handler(answer)})
    server = grpc.server(futures.ThreadPoolExecutor(threads),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20), ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--response", required=True, help="file with the serialized response to answer")
    parser.add_argument("--method", default=METHOD, help=f"the method it answers (default {METHOD})")
    args = parser.parse_args()
    with open(args.response, "rb") as f:
        response = f.read()
    server, port = serve(args.port, response, args.threads, method=args.method)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    print(f"port {port}", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
