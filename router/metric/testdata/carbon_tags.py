# Computes carbon's own normalization of metric names, for tags_test.go:
# reads a JSON list of names on stdin and prints, for each, what Debian's
# graphite-carbon does with it on receipt (carbon/cache.py's
# CacheFeedingProcessor, carbon/client.py's RelayProcessor with
# TAG_RELAY_NORMALIZED): TaggedSeries.parse(name).path, or the exception
# it raises (carbon then logs it and keeps the name unnormalized). Also
# prints where carbon's whisper database stores the normalized name
# (TaggedSeries.encode with TAG_HASH_FILENAMES, carbon's default).
import json
import sys

from carbon.util import TaggedSeries

out = []
for name in json.load(sys.stdin):
    try:
        path = TaggedSeries.parse(name).path
    except Exception as err:
        out.append({"in": name, "error": str(err)})
        continue
    out.append({"in": name, "out": path, "file": TaggedSeries.encode(path, "/", hash_only=True)})
print("[\n" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in out) + "\n]")
