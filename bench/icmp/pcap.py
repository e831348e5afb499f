"""Just enough of the pcap format to read ICMP echo packets back.

tcpdump writes nanosecond timestamps with --time-stamp-precision=nano
(magic 0xa1b23c4d); microsecond files (0xa1b2c3d4) are read too.  Only
Ethernet framing (veth and lo both use it on Linux) and "Linux cooked"
captures are handled, IPv6 only without extension headers: that is all
beacond's benchmark captures contain.
"""
import socket
import struct

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}


def read(path):
    """Yield (t_ns, family, src, dst, icmp_type, ident, seq) per echo packet."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    for endian in ("<", ">"):
        magic = struct.unpack(endian + "I", data[:4])[0]
        if magic in (0xa1b23c4d, 0xa1b2c3d4):
            break
    else:
        raise ValueError(f"{path}: not a pcap file")
    frac_ns = 1 if magic == 0xa1b23c4d else 1000
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    hdr = struct.Struct(endian + "IIII")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = hdr.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        t_ns = sec * 1_000_000_000 + frac * frac_ns
        if linktype == 1:          # Ethernet
            if len(pkt) < 14:
                continue
            etype = struct.unpack_from("!H", pkt, 12)[0]
            l3 = pkt[14:]
        elif linktype == 113:      # Linux cooked (any)
            if len(pkt) < 16:
                continue
            etype = struct.unpack_from("!H", pkt, 14)[0]
            l3 = pkt[16:]
        else:
            continue
        if etype == 0x0800 and len(l3) >= 20 and l3[9] == 1:
            ihl = (l3[0] & 0x0f) * 4
            icmp = l3[ihl:]
            if len(icmp) < 8:
                continue
            fam, src, dst = 4, socket.inet_ntop(socket.AF_INET, l3[12:16]), \
                socket.inet_ntop(socket.AF_INET, l3[16:20])
        elif etype == 0x86dd and len(l3) >= 40 and l3[6] == 58:
            icmp = l3[40:]
            if len(icmp) < 8:
                continue
            fam, src, dst = 6, socket.inet_ntop(socket.AF_INET6, l3[8:24]), \
                socket.inet_ntop(socket.AF_INET6, l3[24:40])
        else:
            continue
        typ = icmp[0]
        if typ not in (ECHO_REQUEST[fam], ECHO_REPLY[fam]):
            continue
        ident, seq = struct.unpack_from("!HH", icmp, 4)
        yield t_ns, fam, src, dst, typ, ident, seq
