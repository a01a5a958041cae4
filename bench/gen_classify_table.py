#!/usr/bin/env python3
"""A synthetic nft table to measure what the kernel pays per commit for jumps into a
classify chain: 2,000 class chains, a verdict map of 17,000 addresses `goto` them, and N
combination chains that `jump classify` themselves (`inline`) or are reached after
`forward` did it (`hoist`).

Usage (as root, in a throwaway namespace):
    python3 bench/gen_classify_table.py N inline|hoist > /tmp/v.nft
    ip netns add vt && ip netns exec vt nft -f /tmp/v.nft
    time ip netns exec vt nft add rule inet v testchain jump classify
    ip netns del vt
"""
import sys
n=int(sys.argv[1]); hoist=sys.argv[2]=="hoist"
out=["table inet v {"]
for c in range(2000):
    out.append(f"  chain cls_{c} {{\n    meta mark set meta mark & 0x0000ffff | 0x{(c+1)<<16:08x}\n  }}")
elems=", ".join(f"10.{(i>>16)&255}.{(i>>8)&255}.{i&255} : goto cls_{i%2000}" for i in range(17000))
out.append(f"  map class_addr {{\n    type ipv4_addr : verdict\n    elements = {{ {elems} }}\n  }}")
out.append("  chain classify {\n    ip saddr vmap @class_addr\n  }")
for c in range(n):
    body = "" if hoist else "    jump classify\n"
    out.append(f"  chain combo_{c} {{\n{body}    meta mark & 0xffff0000 == 0x00010000 return\n    counter\n  }}")
pods=", ".join(f"10.244.{(i>>8)&255}.{i&255} : goto combo_{i%n}" for i in range(1000))
out.append(f"  map pods {{\n    type ipv4_addr : verdict\n    elements = {{ {pods} }}\n  }}")
fw = "    jump classify\n" if hoist else ""
out.append(f"  chain forward {{\n    type filter hook forward priority 0;\n{fw}    ip daddr vmap @pods\n  }}")
out.append("  chain testchain {\n  }")
out.append("}")
print("\n".join(out))
