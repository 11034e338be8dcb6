// Loopback helpers the JavaScript tests share.

import net from "node:net";

/** A TCP port on 127.0.0.1 that nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether something on 127.0.0.1:`port` accepts a TCP connection (within a second). */
export function acceptsTcp(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
    sock.setTimeout(1000, () => done(false));
  });
}

/**
 * Polls GET /health on 127.0.0.1:`httpPort` until it answers 200 and `alsoReady()`
 * holds (true), or `exited()` holds or `ms` pass (false).
 */
export async function awaitHealthy(httpPort, { exited, alsoReady = async () => true, ms = 30_000 }) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !exited()) {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/health`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200 && (await alsoReady())) return true;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  return false;
}
