# Computes where carbon-relay with TAG_RELAY_NORMALIZED = True and
# RELAY_METHOD = consistent-hashing (carbon_ch) sends each name, for
# hashing_test.go: carbon/client.py's RelayProcessor normalizes the name
# with TaggedSeries.parse(name).path (keeping the raw name when that
# raises), and carbon/routers.py's ConsistentHashingRouter asks the
# ConsistentHashRing for the nodes of that key. Reads a JSON list of
# names on stdin; prints, for each, the key and the node order (indexes
# into NODES below).
import json
import sys

from carbon.hashing import ConsistentHashRing
from carbon.util import TaggedSeries

NODES = [("10.0.0.1", None), ("10.0.0.2", None), ("10.0.0.3", None), ("127.0.0.1", "a"), ("127.0.0.1", "b")]
ring = ConsistentHashRing(NODES)
out = []
for name in json.load(sys.stdin):
    try:
        key = TaggedSeries.parse(name).path
    except Exception:
        key = name
    out.append({"in": name, "key": key, "order": [NODES.index(n) for n in ring.get_nodes(key)]})
print("[\n" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in out) + "\n]")
