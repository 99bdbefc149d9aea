#!/usr/bin/env python3
"""Independent check of selector-v2.json: recomputes the derived keys, the Tardos biases, the
session draws and the A/B bits from the file's inputs with the `blake3` package (PyPI), without
any leaktrace code. A CDN reimplementation can follow the same steps.

Usage: python3 check_selector.py [selector-v2.json]     (needs `pip install blake3`)
Exit status 0 when every value matches; prints the first mismatch otherwise.
"""
import json
import math
import struct
import sys
from pathlib import Path

from blake3 import blake3


def derive(context: str, master: bytes, version: int) -> bytes:
    return blake3(master + struct.pack("<I", version), derive_key_context=context).digest()


def for_title(key: bytes, title: str) -> bytes:
    return blake3(b"title\0" + title.encode(), key=key).digest()


def unit(b: bytes) -> float:
    return (struct.unpack("<Q", b)[0] >> 11) / float(1 << 53)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("selector-v2.json")
    v = json.loads(path.read_text())
    master = bytes.fromhex(v["master_key_hex"])
    ver = v["key_version"]
    t = v["tardos_cutoff"]
    if derive("leaktrace 2026-11-21 token mac v1", master, ver).hex() != v["token_mac_key_hex"]:
        print("token mac key differs")
        return 1
    lo = math.asin(math.sqrt(t))
    span = math.pi / 2 - 2 * lo
    checked = 0
    for tv in v["titles"]:
        title = tv["title"]
        bias_key = for_title(derive("leaktrace 2026-11-21 tardos bias v1", master, ver), title)
        cw_key = for_title(derive("leaktrace 2026-11-21 session codeword v1", master, ver), title)
        if bias_key.hex() != tv["bias_key_hex"] or cw_key.hex() != tv["codeword_key_hex"]:
            print(f"{title}: derived keys differ")
            return 1
        qs = []
        for p, want in zip(tv["positions"], tv["biases"]):
            r = lo + unit(blake3(struct.pack("<Q", p), key=bias_key).digest()[:8]) * span
            # T_p = clamp(round_half_up(sin(r)^2 * 65536), 1, 65535); q_p = T_p / 65536.
            q = min(max(math.floor(math.sin(r) ** 2 * 65536 + 0.5), 1), 65535) / 65536
            if abs(q - want) > 1e-15:
                print(f"{title}: bias at {p}: {q} != {want}")
                return 1
            qs.append(q)
        for s in tv["sessions"]:
            xof = blake3(s["session_id"].encode(), key=cw_key)
            for p, q, want_u, want_bit in zip(tv["positions"], qs, s["uniforms"], s["bits"]):
                # X_p = u16 LE at bytes [2p, 2p + 2) of the XOF; u_p = X_p / 65536.
                u = struct.unpack("<H", xof.digest(2, seek=2 * p))[0] / 65536
                bit = "1" if u < q else "0"
                if abs(u - want_u) > 1e-15 or bit != want_bit:
                    print(f"{title}/{s['session_id']}: position {p}: u={u} bit={bit}")
                    return 1
                checked += 1
    print(f"ok: {checked} bits of {len(v['titles'])} titles recomputed independently")
    return 0


if __name__ == "__main__":
    sys.exit(main())
