// Community refs (src/lemmy/refs.ts): name@host, !name@host and community URLs, normalised one
// way; malformed input is a RefError (a 400 at the edge), never another exception.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeInstance, parseCommunity, RefError } from '../src/sources/lemmy/refs.js';

describe('parseCommunity', () => {
  it('parses name@host, !name@host and URLs, lower-casing host and name', () => {
    expect(parseCommunity('technology@lemmy.world')).toMatchObject({
      name: 'technology',
      host: 'lemmy.world',
      instance: 'https://lemmy.world',
      ref: 'technology@lemmy.world',
    });
    expect(parseCommunity('!Technology@LEMMY.World')).toMatchObject({ ref: 'technology@lemmy.world' });
    expect(parseCommunity('https://lemmy.world/c/technology')).toMatchObject({
      ref: 'technology@lemmy.world',
      instance: 'https://lemmy.world',
    });
    expect(parseCommunity('http://127.0.0.1:8536/c/x/')).toMatchObject({ ref: 'x@127.0.0.1:8536', instance: 'http://127.0.0.1:8536' });
    expect(parseCommunity('https://lemmy.world:443/c/te%63h')).toMatchObject({ ref: 'tech@lemmy.world' });
  });

  it('a c/name@otherhost URL names the community on otherhost', () => {
    expect(parseCommunity('https://lemmy.world/c/linux@programming.dev')).toMatchObject({
      name: 'linux',
      host: 'programming.dev',
      instance: 'https://programming.dev',
      ref: 'linux@programming.dev',
    });
    expect(parseCommunity('https://lemmy.world/c/linux%40Programming.dev')).toMatchObject({ ref: 'linux@programming.dev' });
    expect(parseCommunity('https://lemmy.world/c/technology@lemmy.world')).toMatchObject({ ref: 'technology@lemmy.world' });
    expect(parseCommunity('http://127.0.0.1:8536/c/x@127.0.0.1:9000')).toMatchObject({
      ref: 'x@127.0.0.1:9000',
      instance: 'http://127.0.0.1:9000',
    });
    expect(() => parseCommunity('https://lemmy.world/c/a@b@c')).toThrow(RefError);
    expect(() => parseCommunity('https://lemmy.world/c/a@')).toThrow(RefError);
    expect(() => parseCommunity('https://lemmy.world/c/a@https://x')).toThrow(RefError);
  });

  it('a malformed % escape is a RefError naming the field, not a URIError', () => {
    for (const raw of [
      'https://lemmy.world/c/te%zzch',
      'https://lemmy.world/c/%',
      'https://lemmy.world/c/a%E0%A4%A',
      'https://lemmy.world/c/%C0%AF',
    ]) {
      let err: unknown;
      try {
        parseCommunity(raw, 'community');
      } catch (e) {
        err = e;
      }
      expect(err, raw).toBeInstanceOf(RefError);
      expect((err as RefError).field).toBe('community');
    }
  });

  it('drops one trailing dot of a host (lemmy.world. is lemmy.world) and refuses empty labels', () => {
    expect(parseCommunity('technology@lemmy.world.')).toMatchObject({ ref: 'technology@lemmy.world', instance: 'https://lemmy.world' });
    expect(parseCommunity('https://lemmy.world./c/technology')).toMatchObject({ ref: 'technology@lemmy.world' });
    expect(parseCommunity('https://lemmy.world/c/linux@programming.dev.')).toMatchObject({ ref: 'linux@programming.dev' });
    expect(parseCommunity('x@LEMMY.World.:8536')).toMatchObject({ ref: 'x@lemmy.world:8536' });
    expect(normalizeInstance('https://lemmy.world.')).toEqual({ instance: 'https://lemmy.world', host: 'lemmy.world' });
    expect(normalizeInstance('lemmy.world.:443')).toEqual({ instance: 'https://lemmy.world', host: 'lemmy.world' });
    for (const bad of ['x@lemmy.world..', 'x@.lemmy.world', 'x@lemmy..world']) expect(() => parseCommunity(bad), bad).toThrow(RefError);
  });

  it('never throws anything but RefError, and what it returns round-trips', () => {
    const chars = fc.constantFrom(...'abcXYZ09_.-@!%:/?#[]éz '.split(''), '%zz', '%41', '%', 'https://', 'c/', 'lemmy.world');
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 20 }).map((a) => a.join('')),
        (raw) => {
          let parsed;
          try {
            parsed = parseCommunity(raw);
          } catch (err) {
            expect(err).toBeInstanceOf(RefError);
            return;
          }
          expect(parseCommunity(parsed.ref).ref).toBe(parsed.ref);
          expect(parsed.host).not.toMatch(/\.$/);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
