"""Benchmark suite for Tertulia and any other BLAB-compatible server.

Modules:

- `httpclient`: a small keep-alive HTTP/1.1 client, so that the client side costs little CPU;
- `client`: the protocol client (create, join, history, WebSocket round trips);
- `echo_server`: the bare limit, a minimal server on the same stack that stores nothing;
- `scenarios`: the measurements, each returning a dict of numbers;
- `servers`: starting and stopping server processes, their RSS;
- `report`: targets, the results table and `docs/performance.md`;
- `run`: the command line, `python -m bench.run`.
"""
