"""A cache in another process, driven over stdin/stdout with one JSON object per line.

    python proc_worker.py '{"memory": {...} | null, "disk": {...} | null, "redis": {...} | null,
                            "cache": {...}}'

Each request ``{"op": "get", "args": [...]}`` is answered ``{"ok": result}`` or
``{"error": "Type: message"}``. Used by the multi-process tests.
"""

from __future__ import annotations

import json
import sys

from mlcache import Cache, DiskTier, MemoryTier, RedisTier


def build(config: dict) -> Cache:
    tiers = []
    if config.get("memory") is not None:
        tiers.append(MemoryTier(**config["memory"]))
    if config.get("disk") is not None:
        tiers.append(DiskTier(**config["disk"]))
    if config.get("redis") is not None:
        tiers.append(RedisTier(**config["redis"]))
    return Cache(*tiers, **config.get("cache", {}))


def main() -> None:
    cache = build(json.loads(sys.argv[1]))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = getattr(cache, request["op"])(*request.get("args", []))
            print(json.dumps({"ok": result}), flush=True)
        except Exception as exc:  # reported to the test
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
