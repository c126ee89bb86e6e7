"""The persistence bridge (`manage.py engine_bridge`): the engine's event stream into PostgreSQL, exactly once,
and conflated live updates to the console. See docs/bridge.md.

- `link.py`: the engine side (raw SUB frames, replays, snapshots) and frame decoding into events or dead letters;
- `fast.py`: the market-data decoder (mirror structs, one msgspec call per run of frames);
- `rows.py`: events -> rows (ticks/lots to Decimal, order state, the order-event hash chain);
- `copybin.py`: tick rows as ready binary COPY records;
- `writer.py`: one transaction per batch (binary COPY, upserts, the checkpoint);
- `committer.py`: the thread that commits batches while the loop receives the next;
- `livestate.py`: conflated live topics and their publishing thread;
- `service.py`: the loop tying them together, with recovery from gaps, restarts and outages.
"""
