"""H.264 in RTP (RFC 6184), as far as the camera needs to look inside what its encoder
sends: which NAL units a packet carries, whether it starts a keyframe, and the parameter
sets that give the SDP its profile-level-id and sprop-parameter-sets; and, for `appliance
call --video`, the byte stream (Annex B) that the packets of a stream make again.

The encoder packetizes (packetization mode 1: single NAL unit packets, STAP-A aggregates
and FU-A fragments); the agent only reads the first bytes of each payload.
"""

import base64

SLICE = 1
IDR = 5
SEI = 6
SPS = 7
PPS = 8
STAP_A = 24
FU_A = 28
START_CODE = b"\x00\x00\x00\x01"


def nal_units(payload):
    """[(type, NAL unit bytes)] that the RTP `payload` carries whole or begins: one for a
    single NAL unit packet, each aggregated one of a STAP-A, and for an FU-A the start of
    the fragmented unit (type and a rebuilt header only), or nothing for its later
    fragments. Malformed payloads carry nothing."""
    if not payload:
        return []
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return [(kind, bytes(payload))]
    if kind == STAP_A:
        out = []
        offset = 1
        while offset + 2 <= len(payload):
            size = (payload[offset] << 8) | payload[offset + 1]
            offset += 2
            if size == 0 or offset + size > len(payload):
                return out
            unit = bytes(payload[offset:offset + size])
            out.append((unit[0] & 0x1F, unit))
            offset += size
        return out
    if kind == FU_A and len(payload) >= 2 and payload[1] & 0x80:  # the start bit
        header = (payload[0] & 0xE0) | (payload[1] & 0x1F)
        return [(payload[1] & 0x1F, bytes([header]) + bytes(payload[2:]))]
    return []


def annex_b(payload):
    """The bytes of an H.264 byte stream (Annex B) that the RTP `payload` adds, in order:
    a start code before each NAL unit it carries or begins, an FU-A fragment's data after
    the earlier ones'."""
    if not payload:
        return b""
    if payload[0] & 0x1F == FU_A and len(payload) >= 2 and not payload[1] & 0x80:
        return bytes(payload[2:])
    return b"".join(START_CODE + unit for _, unit in nal_units(payload))


def starts_keyframe(payload):
    """Whether the packet starts what a decoder can begin at: the parameter sets that come
    before an IDR picture, or the IDR picture itself."""
    return any(kind in (SPS, IDR) for kind, _ in nal_units(payload))


def profile_level_id(sps):
    """The SDP's profile-level-id (six hex digits: profile_idc, the constraint flags,
    level_idc) of a sequence parameter set NAL unit."""
    if len(sps) < 4:
        raise ValueError("a sequence parameter set is at least 4 bytes")
    return "%02x%02x%02x" % (sps[1], sps[2], sps[3])


def sprop_parameter_sets(*units):
    """The SDP's sprop-parameter-sets: each NAL unit in base64, comma-separated."""
    return ",".join(base64.b64encode(unit).decode("ascii") for unit in units)
