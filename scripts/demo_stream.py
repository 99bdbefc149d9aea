#!/usr/bin/env python3
"""Plays one viewer's HLS stream through the leaktrace edge, as a player would, and saves it.

Usage: demo_stream.py EDGE_URL PLAYER_PATH PACKAGE_DIR OUT.mp4

Fetches the multivariant playlist at EDGE_URL + PLAYER_PATH, picks the highest-bandwidth
variant, fetches its media playlist, the init segment and every media segment, and writes them
end to end into OUT.mp4 (a fragmented MP4 any player reads). Prints one line: the number of
segments and bytes, and the variant the edge served at each position, found by comparing each
segment's media data (`mdat`) with the package's `a/` and `b/` files (the edge rewrites the
in-band WMPaceInfo box, so whole files differ; the pictures do not).

Loopback only: the demo's edge listens on 127.0.0.1.
"""

import hashlib
import os
import sys
import urllib.parse
import urllib.request


def get(url: str) -> bytes:
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"demo_stream: refusing a non-loopback URL {url}")
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def mdat_digest(data: bytes) -> str:
    """SHA-256 of every `mdat` payload in a segment, in order (ISO BMFF box walk)."""
    h = hashlib.sha256()
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        head = 8
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
            head = 16
        elif size == 0:
            size = len(data) - i
        if size < head:
            break
        if kind == b"mdat":
            h.update(data[i + head : i + size])
        i += size
    return h.hexdigest()


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    base, path, package, out = sys.argv[1:]
    master_url = base + path
    master = get(master_url).decode()
    best, best_bw, pending = None, -1, None
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = line.split(":", 1)[1]
            bw = 0
            for part in attrs.split(","):
                if part.startswith("BANDWIDTH="):
                    bw = int(part.split("=", 1)[1])
            pending = bw
        elif line and not line.startswith("#") and pending is not None:
            if pending > best_bw:
                best, best_bw = line.strip(), pending
            pending = None
    if best is None:
        sys.exit("demo_stream: no variant in the multivariant playlist")
    media_url = urllib.parse.urljoin(master_url, best)
    rendition = best.split("/")[0]
    media = get(media_url).decode()
    init_uri, segments = None, []
    for line in media.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            init_uri = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line and not line.startswith("#"):
            segments.append(line.strip())
    if init_uri is None or not segments:
        sys.exit("demo_stream: the media playlist has no init segment or no segments")
    total = 0
    variants = []
    with open(out, "wb") as f:
        init = get(urllib.parse.urljoin(media_url, init_uri))
        f.write(init)
        total += len(init)
        for seg in segments:
            body = get(urllib.parse.urljoin(media_url, seg))
            f.write(body)
            total += len(body)
            name = os.path.basename(urllib.parse.urlsplit(seg).path)
            got = mdat_digest(body)
            found = "?"
            for v in ("a", "b"):
                p = os.path.join(package, rendition, v, name)
                if os.path.isfile(p) and mdat_digest(open(p, "rb").read()) == got:
                    found = v.upper()
            variants.append(found)
    print(f"{rendition} {len(segments)} segments {total / 1e6:.1f} MB variants {''.join(variants)}")


if __name__ == "__main__":
    main()
