import net from 'node:net';

// Ports this process has handed out: the kernel may give a port just probed and closed to the
// next probe, and two settings on one port fail at start-up (EADDRINUSE).
const handedOut = new Set<number>();

function probe(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1, and not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await probe();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) ports.push(await freePort());
  return ports;
}

/** The first of `n` consecutive ports free a moment ago on 127.0.0.1 (embedded Postgres nodes take a base port), none handed out before. */
export async function freePortRange(n: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const range = Array.from({ length: n }, (_, i) => base + i);
    if (range.some((p) => handedOut.has(p))) continue;
    const free = await Promise.all(
      range.map(
        (port) =>
          new Promise<boolean>((resolve) => {
            const srv = net.createServer();
            srv.once('error', () => resolve(false));
            srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
          }),
      ),
    );
    if (!free.every(Boolean)) continue;
    for (const p of range) handedOut.add(p);
    return base;
  }
}
