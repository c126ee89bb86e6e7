"""The engine as a process: configuration file, the engine thread's loop, ZeroMQ sockets, CURVE (see docs/server.md)."""
