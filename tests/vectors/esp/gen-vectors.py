#!/usr/bin/env python3
"""Writes kat.ini: ESP known answers for plugins/esp_user/tests/test-esp.c.

Published vectors are copied as data (RFC 3602 section 4 cases 5-8,
draft-mcgrew-gcm-test-01 section 4 cases without ESN, RFC 4868 section
2.7.2 AUTH256/384/512, RFC 2202 HMAC-SHA-1/MD5 truncated to 96 bits as
RFC 2404/2403 do) and re-checked here; the CBC+HMAC and GCM packets that
no document publishes are built with python3-cryptography and hmac
(OpenSSL, an implementation independent of GnuTLS). Run it from this
directory: python3 gen-vectors.py > kat.ini
"""
import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ESP_AES_CBC, ESP_AES_GCM_16 = 12, 20
AUTH = {"none": (0, None, 0), "md5": (1, hashlib.md5, 12), "sha1": (2, hashlib.sha1, 12),
        "sha256": (5, hashlib.sha256, 16), "sha384": (6, hashlib.sha384, 24),
        "sha512": (7, hashlib.sha512, 32)}

out = []


def group(name, **kv):
    out.append("[%s]" % name)
    for k, v in kv.items():
        out.append("%s=%s" % (k.replace("_", "-"), v))
    out.append("")


def trailer(data, align, nh):
    pad = (align - (len(data) + 2) % align) % align
    return data + bytes(range(1, pad + 1)) + bytes([pad, nh])


def cbc_packet(key, auth, akey, spi, seq, iv, data, nh):
    pt = trailer(data, 16, nh)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    pkt = struct.pack(">II", spi, seq) + iv + enc.update(pt) + enc.finalize()
    if auth != "none":
        _, h, n = AUTH[auth]
        pkt += hmac.new(akey, pkt, h).digest()[:n]
    return pkt


def gcm_packet(key, salt, spi, seq, iv, data, nh):
    hdr = struct.pack(">II", spi, seq)
    return hdr + iv + AESGCM(key).encrypt(salt + iv, trailer(data, 4, nh), hdr)


def check_cbc(key, pkt, data, nh):
    iv, ct = pkt[8:24], pkt[24:]
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    pt = dec.update(ct) + dec.finalize()
    assert pt == trailer(data, 16, nh), "RFC 3602 vector does not decrypt"


# ---- RFC 3602 section 4: AES-CBC ESP packets without integrity ----
K56 = "90d382b410eeba7ad938c46cec1a82bf"
K78 = "0123456789abcdef0123456789abcdef"
rfc3602 = [
    (5, K56, "transport", 0x4321, 1, 1,
     "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f3031323334353637",
     "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849"
     "a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c"
     "538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6"),
    (6, K56, "transport", 0x4321, 8, 1,
     "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
     "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109"
     "689bb379d2d750c0d915dca346a89f75"),
    (7, K78, "tunnel", 0x8765, 2, 4,
     "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b"
     "0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233"
     "34353637",
     "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c"
     "237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b"
     "8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"),
    (8, K78, "tunnel", 0x8765, 5, 4,
     "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048f"
     "e45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de"
     "435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892"),
]
for case, key, mode, spi, seq, nh, data, pkt in rfc3602:
    check_cbc(bytes.fromhex(key), bytes.fromhex(pkt), bytes.fromhex(data), nh)
    group("rfc3602-case%d" % case, source="RFC 3602 section 4 case #%d (no integrity)" % case,
          transform=ESP_AES_CBC, auth=0, key=key, mode=mode, spi="%08x" % spi, seq=seq,
          iv=pkt[16:48], payload=data, next_header=nh, packet=pkt)

# ---- draft-mcgrew-gcm-test-01 section 4: the cases with 32-bit sequence
# numbers (8-byte AAD). Their Next Header is 1 although the payloads look
# like IPv4 packets, so they run in transport mode. ----
gcm = [
    (2, "feffe9928665731c6d6a8f9467308308", "cafebabe", "facedbaddecaf888", 0xa5f8, 0xa,
     "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100000100000000000003"
     "7369700963796265726369747902646b00000100010001",
     "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f"
     "51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd183b70d3aa8bc6ee4c309e9d85a41ad4a"),
    (3, "abbccddef00112233445566778899aababbccddef00112233445566778899aab", "11223344",
     "0102030405060708", 0x4a2cbfe3, 2,
     "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000"
     "020405b40101040201020201",
     "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d34"
     "7f0545659f14e99def842d8eb335f4eecfdbf831824b4c4915956c96"),
    (4, "00000000000000000000000000000000", "00000000", "0000000000000000", 0, 1,
     "4500003c99c500008001cb7a40679318010101010800075c020044006162636465666768696a6b6c"
     "6d6e6f707172737475767761626364656667686901020201",
     "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284456476492719ffb6"
     "4de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3f821d496eeb096e98ad2b69e4799c71d"),
    (7, "feffe9928665731c6d6a8f9467308308feffe9928665731c", "cafebabe", "facedbaddecaf888",
     0xa5f8, 0xa,
     "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e501016d075680001",
     "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0315b27452144cc77"
     "95457b9652037f5318027b5b4cd7a636"),
    (11, "7d773d00c144c525ac619d18c84a3f47", "d9664267", "43457e9182443bc6", 0x335467ae,
     0xffffffff, "01020201", "437f866bcb3f699fe9b0822bac961c4504bef270"),
]
for case, key, salt, iv, spi, seq, pt, ct in gcm:
    pt_b = bytes.fromhex(pt)
    pad, nh = pt_b[-2], pt_b[-1]
    data = pt_b[:len(pt_b) - 2 - pad]
    hdr = struct.pack(">II", spi, seq)
    pkt = hdr + bytes.fromhex(iv) + bytes.fromhex(ct)
    assert pkt == gcm_packet(bytes.fromhex(key), bytes.fromhex(salt), spi, seq, bytes.fromhex(iv), data, nh)
    group("gcm-test-case%d" % case, source="draft-mcgrew-gcm-test-01 section 4 case %d" % case,
          transform=ESP_AES_GCM_16, auth=0, key=key + salt, mode="transport", spi="%08x" % spi,
          seq=seq, iv=iv, payload=data.hex(), next_header=nh, packet=pkt.hex())

# ---- ESP with integrity: built here (no published ESP-level vectors) ----
def ipv4(src, dst, proto, payload):
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1c46, 0x4000, 64, proto, 0,
                                bytes(src), bytes(dst)))
    s = sum(struct.unpack(">10H", bytes(hdr)))
    s = (s & 0xffff) + (s >> 16)
    struct.pack_into(">H", hdr, 10, ~s & 0xffff)
    return bytes(hdr) + payload


def ipv6(src, dst, nh, payload):
    return struct.pack(">IHBB", 0x60000000, len(payload), nh, 63) + bytes.fromhex(src) + bytes.fromhex(dst) + payload


ipv4_icmp = ipv4([192, 168, 0, 1], [192, 168, 0, 199], 1, bytes.fromhex("080042a10001000a") + bytes(range(32)))
ipv4_short = ipv4([192, 168, 0, 1], [192, 168, 0, 199], 1, bytes.fromhex("080042a10001000b") + bytes(range(12)))
ipv6_udp = ipv6("20010db8000000000000000000000001", "20010db8000000000000000000000002", 17,
                bytes.fromhex("d43101bb00240000") + b"modike ESP vector over IPv6.")
tcp_payload = bytes.fromhex("c350005000000001000000005002ffff00000000") + b"GET / HTTP/1.0\r\n\r\n"
built = [
    ("cbc128-sha1-tunnel4", 16, "sha1", "tunnel", ipv4_icmp, 4),
    ("cbc256-sha256-tunnel6", 32, "sha256", "tunnel", ipv6_udp, 41),
    ("cbc192-sha384-transport", 24, "sha384", "transport", tcp_payload, 6),
    ("cbc128-sha512-tunnel4", 16, "sha512", "tunnel", ipv4_short, 4),
    ("cbc128-md5-transport", 16, "md5", "transport", tcp_payload[:20], 6),
    ("cbc128-sha256-empty", 16, "sha256", "transport", b"", 17),
]
for i, (name, klen, auth, mode, data, nh) in enumerate(built):
    key = bytes((0x11 * (i + 1) + j) & 0xff for j in range(klen))
    akey = bytes((0xa5 ^ (j * 7 + i)) & 0xff for j in range(hashlib.new(AUTH[auth][1]().name).digest_size))
    iv = bytes((0x30 + i + j * 3) & 0xff for j in range(16))
    spi, seq = 0xc0de0000 + i, 1 + i * 1000
    pkt = cbc_packet(key, auth, akey, spi, seq, iv, data, nh)
    group(name, source="built with python3-cryptography and hmac (independent of GnuTLS)",
          transform=ESP_AES_CBC, auth=AUTH[auth][0], key=key.hex(), auth_key=akey.hex(), mode=mode,
          spi="%08x" % spi, seq=seq, iv=iv.hex(), payload=data.hex(), next_header=nh, packet=pkt.hex())

# GCM with the explicit IV we send: the 64-bit sequence number.
for i, (name, klen, mode, data, nh) in enumerate([("gcm128-seqiv-tunnel6", 16, "tunnel", ipv6_udp, 41),
                                                  ("gcm256-seqiv-tunnel4", 32, "tunnel", ipv4_icmp, 4),
                                                  ("gcm192-seqiv-transport", 24, "transport", tcp_payload, 6)]):
    key = bytes((0x5a + 13 * j + i) & 0xff for j in range(klen))
    salt = bytes([0xde, 0xad, 0xbe, 0xef - i])
    spi, seq = 0x00abc000 + i, 7 + 77 * i
    iv = struct.pack(">Q", seq)
    pkt = gcm_packet(key, salt, spi, seq, iv, data, nh)
    group(name, source="built with python3-cryptography (independent of GnuTLS); IV = sequence number",
          transform=ESP_AES_GCM_16, auth=0, key=(key + salt).hex(), mode=mode, spi="%08x" % spi,
          seq=seq, iv=iv.hex(), iv_is_seq="true", payload=data.hex(), next_header=nh,
          packet=pkt.hex())

# ---- Truncated HMACs: RFC 4868 2.7.2 AUTH cases, RFC 2202 cases 1 and 3 ----
def auth_cases(n):
    return [(b"\x0b" * n, b"Hi There"), (b"Jefe" * (n // 4), b"what do ya want for nothing?"),
            (b"\xaa" * n, b"\xdd" * 50), (bytes(range(1, n + 1)), b"\xcd" * 50)]


published = {("sha256", 1): "198a607eb44bfbc69903a0f1cf2bbdc5",
             ("sha256", 2): "167f928588c5cc2eef8e3093caa0e87c",
             ("sha256", 3): "cdcb1220d1ecccea91e53aba3092f962",
             ("sha256", 4): "372efcf9b40b35c2115b1346903d2ef4",
             ("sha384", 1): "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
             ("sha1", 1): "b617318655057264e28bc0b6", ("sha1", 3): "125d7342b9ac11cd91a39af4"}
for auth, n, src in [("sha256", 32, "RFC 4868 2.7.2.2 AUTH256-%d"), ("sha384", 48, "RFC 4868 2.7.2.3 AUTH384-%d"),
                     ("sha512", 64, "RFC 4868 2.7.2.4 AUTH512-%d")]:
    for i, (k, d) in enumerate(auth_cases(n), 1):
        icv = hmac.new(k, d, AUTH[auth][1]).digest()[:AUTH[auth][2]].hex()
        assert published.get((auth, i), icv) == icv
        group("icv-%s-%d" % (auth, i), source=src % i, auth=AUTH[auth][0], auth_key=k.hex(),
              data=d.hex(), icv=icv)
for auth, n in [("sha1", 20), ("md5", 16)]:
    for i, (k, d) in [(1, (b"\x0b" * n, b"Hi There")), (3, (b"\xaa" * n, b"\xdd" * 50))]:
        icv = hmac.new(k, d, AUTH[auth][1]).digest()[:12].hex()
        assert published.get((auth, i), icv) == icv
        group("icv-%s-%d" % (auth, i), source="RFC 2202 %s test case %d, truncated to 96 bits (RFC %s)"
              % (auth.upper(), i, "2404" if auth == "sha1" else "2403"),
              auth=AUTH[auth][0], auth_key=k.hex(), data=d.hex(), icv=icv)

sys.stdout.write("# ESP known answers; generated by gen-vectors.py (see there for sources).\n\n")
sys.stdout.write("\n".join(out))
