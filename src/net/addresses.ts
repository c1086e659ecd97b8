// Refuses addresses an instance URL must not reach by default: anything that is not globally
// routable unicast (loopback, private, link-local where cloud metadata lives, CGNAT, multicast,
// reserved, documentation…), in IPv4 and IPv6. The ranges are ipaddr.js's; IPv6 forms that carry
// an IPv4 address (mapped, compatible, translated, NAT64, 6to4) are judged by that IPv4 address,
// and tunnels or prefixes whose target cannot be told from the address (Teredo, local-use NAT64)
// are refused.
import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

/** ipaddr.js range names that may be reached; everything else is refused. */
const PUBLIC_RANGE = 'unicast';
/** 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052): the IPv4 address is the last 32 bits. */
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

function ipv4At(bytes: number[], offset: number): ipaddr.IPv4 {
  return new ipaddr.IPv4(bytes.slice(offset, offset + 4));
}

/** The IPv4 address an IPv6 address stands for, null when it carries none, 'refuse' when unknowable. */
function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4 | null | 'refuse' {
  const bytes = addr.toByteArray();
  switch (addr.range()) {
    case 'ipv4Mapped': // ::ffff:a.b.c.d (ipaddr.js also reads ::a.b.c.d as this)
    case 'rfc6145': // ::ffff:0:a.b.c.d, IPv4-translated
      return ipv4At(bytes, 12);
    case 'rfc6052': // NAT64: the well-known /96 prefix, or the local-use 64:ff9b:1::/48 (RFC 8215)
      return addr.match(NAT64_WELL_KNOWN) ? ipv4At(bytes, 12) : 'refuse';
    case '6to4': // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16–48
      return ipv4At(bytes, 2);
    case 'teredo': // 2001::/32: the client address is obfuscated and reached through a relay
      return 'refuse';
    case 'unicast':
      // IPv4-compatible ::a.b.c.d (deprecated, ::/96); ::1 and :: have their own ranges.
      return bytes.slice(0, 12).every((b) => b === 0) ? ipv4At(bytes, 12) : null;
    default:
      return null;
  }
}

/** True for addresses that are not on the public internet (and for anything that is not an IP). */
export function isPrivateAddress(address: string): boolean {
  if (!net.isIP(address)) return true; // not an IP at all: refuse rather than guess
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(address);
  } catch {
    return true;
  }
  if (addr.kind() === 'ipv6') {
    const v4 = embeddedIPv4(addr as ipaddr.IPv6);
    if (v4 === 'refuse') return true;
    if (v4) return v4.range() !== PUBLIC_RANGE;
  }
  return addr.range() !== PUBLIC_RANGE;
}

export class PrivateAddressError extends Error {
  constructor(
    readonly host: string,
    readonly address: string,
  ) {
    super(`${host} resolves to ${address}, a loopback/private/link-local address; set ALLOW_PRIVATE_INSTANCES=true to allow it`);
    this.name = 'PrivateAddressError';
  }
}

/** A dns.lookup replacement for sockets: connects only to public addresses. */
export const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '', 0);
    const list = addresses as dns.LookupAddress[];
    const bad = list.find((a) => isPrivateAddress(a.address));
    if (bad) return callback(new PrivateAddressError(hostname, bad.address) as NodeJS.ErrnoException, '', 0);
    if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
    callback(null, list[0].address, list[0].family);
  });
};

/** Checks a host (name or literal) up front, for a clear 4xx before any request is made. */
export async function assertPublicHost(hostname: string): Promise<void> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) {
    if (isPrivateAddress(host)) throw new PrivateAddressError(hostname, host);
    return;
  }
  const addresses = await dns.promises.lookup(host, { all: true });
  const bad = addresses.find((a) => isPrivateAddress(a.address));
  if (bad) throw new PrivateAddressError(hostname, bad.address);
}
