// The private-address filter (src/net/addresses.ts): only globally routable unicast addresses
// pass; IPv4 carried inside IPv6 (mapped, compatible, translated, NAT64, 6to4) is unwrapped and
// checked as IPv4; Teredo and site-local are refused. No network: pure address checks.
import { describe, expect, it } from 'vitest';
import { assertPublicHost, isPrivateAddress, PrivateAddressError } from '../src/net/addresses.js';

const refused: Record<string, string> = {
  '::ffff:127.0.0.1': 'IPv4-mapped loopback, dotted',
  '::ffff:7f00:1': 'IPv4-mapped loopback, hex',
  '::ffff:a00:1': 'IPv4-mapped 10.0.0.1, hex',
  '::ffff:0:7f00:1': 'IPv4-translated (RFC 6145) loopback',
  '::127.0.0.1': 'IPv4-compatible loopback, dotted',
  '::7f00:1': 'IPv4-compatible loopback, hex',
  '::a00:1': 'IPv4-compatible 10.0.0.1, hex',
  '::a9fe:a9fe': 'IPv4-compatible 169.254.169.254, hex',
  '64:ff9b::10.0.0.1': 'NAT64 of 10.0.0.1, dotted',
  '64:ff9b::a00:1': 'NAT64 of 10.0.0.1, hex',
  '64:ff9b::7f00:1': 'NAT64 of loopback',
  '64:ff9b::a9fe:a9fe': 'NAT64 of the metadata address',
  '64:ff9b:1::1': 'local-use NAT64 prefix (RFC 8215)',
  '2002:7f00:0001::1': '6to4 of 127.0.0.1',
  '2002:0a00:0001::': '6to4 of 10.0.0.1',
  '2002:a00:1::': '6to4 of 10.0.0.1, short form',
  '2002:c0a8:0101::1': '6to4 of 192.168.1.1',
  '2001::1': 'Teredo',
  '2001:0:4136:e378::1': 'Teredo, short form',
  '2001:0:4136:e378:8000:63bf:3fff:fdd2': 'Teredo with a server address',
  'fec0::1': 'site-local (deprecated)',
  'fe80::1': 'link-local',
  'fe80::1%lo': 'link-local with a zone',
  'fc00::1': 'unique local',
  'fd12:3456::1': 'unique local (fd)',
  '::1': 'IPv6 loopback',
  '::': 'IPv6 unspecified',
  'ff02::1': 'IPv6 multicast',
  '2001:db8::1': 'documentation',
  '100::1': 'discard',
  '127.0.0.1': 'IPv4 loopback',
  '127.1.2.3': 'IPv4 loopback /8',
  '10.0.0.1': 'RFC 1918',
  '10.1.2.3': 'RFC 1918 /8',
  '172.16.5.4': 'RFC 1918',
  '192.168.1.1': 'RFC 1918',
  '169.254.169.254': 'link-local (cloud metadata)',
  '100.64.0.1': 'CGNAT',
  '0.0.0.0': 'unspecified',
  '0.1.2.3': 'this network',
  '224.0.0.1': 'multicast',
  '255.255.255.255': 'broadcast',
  '240.0.0.1': 'reserved',
  '192.0.2.1': 'documentation',
  '198.18.0.1': 'benchmarking',
  'not-an-ip': 'not an address at all',
  '': 'empty',
};

const allowed = [
  '1.1.1.1',
  '8.8.8.8',
  '93.184.216.34',
  '2606:4700::1111',
  '2606:4700:4700::1111',
  '64:ff9b::1.1.1.1',
  '64:ff9b::101:101',
  '2002:0101:0101::1',
  '2002:101:101::1',
  '::ffff:8.8.8.8',
  '::ffff:808:808',
];

describe('isPrivateAddress', () => {
  it.each(Object.entries(refused))('refuses %s (%s)', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(allowed)('allows public %s', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('assertPublicHost refuses bracketed literals and accepts public ones without DNS', async () => {
    await expect(assertPublicHost('[::ffff:7f00:1]')).rejects.toBeInstanceOf(PrivateAddressError);
    await expect(assertPublicHost('[64:ff9b::a00:1]')).rejects.toBeInstanceOf(PrivateAddressError);
    await expect(assertPublicHost('[2002:7f00:1::1]')).rejects.toBeInstanceOf(PrivateAddressError);
    await expect(assertPublicHost('[2606:4700::1111]')).resolves.toBeUndefined();
    await expect(assertPublicHost('1.1.1.1')).resolves.toBeUndefined();
  });
});
