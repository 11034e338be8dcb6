// What the Service Bus JavaScript tests share: starting a real Lapis binary
// ($LAPIS_BIN or <repo>/target/debug/lapis) on free loopback ports with a fresh
// data dir and a Config.json, the emulator-style connection string, clients
// with no retries, and helpers that bound every await (`within`) so a server
// that hangs fails the test instead of CI. A failing test's message ends with
// the tail of the server's log.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceBusClient, isServiceBusError } from "@azure/service-bus";
import { freePort, sleep } from "./net_util.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..", "..");
const LAPIS_BIN = process.env.LAPIS_BIN || path.join(REPO, "target", "debug", "lapis");
export const KEY_NAME = "RootManageSharedAccessKey";
export const KEY = "SAS_KEY_VALUE";

// Bounds. WAIT_MS is how long a receive waits when messages are expected;
// QUIET_MS how long it waits to show that nothing (more) arrives.
export const OP_MS = 8_000;
export const WAIT_MS = 3_000;
export const QUIET_MS = 800;
export const TEST_MS = 30_000;

// ------------------------------------------------------------------ server

async function distinctFreePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export { sleep };

function acceptsTcp(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
    sock.setTimeout(1000, () => done(false));
  });
}

let proc;
let dataDir;
let log = "";
let amqpPort;
const clients = [];

const LOG_MARK = "--- lapis log tail ---";

export function logTail(chars = 6000) {
  return `${LOG_MARK}\n${log.slice(-chars)}`;
}

async function startLapis(config) {
  assert.ok(existsSync(LAPIS_BIN), `lapis binary not found at ${LAPIS_BIN}: run \`cargo build -p lapis\` or set LAPIS_BIN`);
  const base = mkdtempSync(path.join(os.tmpdir(), "lapis-js-sb-"));
  dataDir = base;
  const configPath = path.join(base, "servicebus-config.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  for (let attempt = 0; attempt < 3; attempt++) {
    const [httpPort, port] = await distinctFreePorts(2);
    const data = path.join(base, `data-${attempt}`);
    log = "";
    proc = spawn(
      LAPIS_BIN,
      [
        "serve", "--data-dir", data, "--host", "127.0.0.1",
        "--queue-port", "0", "--blob-port", "0", "--kafka-port", "0",
        "--http-port", String(httpPort), "--amqp-port", String(port),
        "--config", configPath,
      ],
      // lapis_amqp at debug logs why a connection ended (e.g. a frame it could not decode).
      { stdio: ["ignore", "pipe", "pipe"], env: { LAPIS_LOG_LEVEL: "info,lapis_amqp=debug", NO_COLOR: "1", ...process.env } },
    );
    proc.stdout.on("data", (d) => { log = (log + d).slice(-200_000); });
    proc.stderr.on("data", (d) => { log = (log + d).slice(-200_000); });
    let exited = false;
    proc.once("exit", () => { exited = true; });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !exited) {
      try {
        const r = await fetch(`http://127.0.0.1:${httpPort}/health`, { signal: AbortSignal.timeout(2000) });
        if (r.status === 200 && (await acceptsTcp(port))) return port;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    if (!exited) {
      proc.kill("SIGKILL");
      throw new Error(`lapis did not become ready (/health 200 and AMQP accepting) within 30 s\n${logTail()}`);
    }
    // exited early (e.g. a port got taken meanwhile): try other ports
  }
  throw new Error(`lapis failed to start three times\n${logTail()}`);
}

// ------------------------------------------------------------------ helpers

/** `promise`, or a rejection naming `what` (with the server log) after `ms`. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms\n${logTail()}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/** The connection string a user copies for Microsoft's emulator, on Lapis's port. */
export function connStr(key = KEY) {
  return (
    `Endpoint=sb://localhost:${amqpPort};SharedAccessKeyName=${KEY_NAME};` +
    `SharedAccessKey=${key};UseDevelopmentEmulator=true;`
  );
}

/** A client with no retries (the first failure is the one reported) and short operation timeouts. */
export function newClient(key = KEY) {
  const c = new ServiceBusClient(connStr(key), { retryOptions: { maxRetries: 0, timeoutInMs: OP_MS } });
  clients.push(c);
  return c;
}

/** Receiver options shared by the tests: no automatic lock renewal (the tests renew explicitly). */
export const NO_AUTO_RENEW = { maxAutoLockRenewalDurationInMs: 0 };

export async function send(client, entity, messages) {
  const sender = client.createSender(entity);
  try {
    await within(sender.sendMessages(messages), OP_MS, `send to ${entity}`);
  } finally {
    await within(sender.close(), OP_MS, `close sender of ${entity}`);
  }
}

/** Receives until `n` messages arrived or `waitMs` passed; returns what came. */
export async function receive(receiver, n, waitMs = WAIT_MS) {
  const got = [];
  const deadline = Date.now() + waitMs;
  while (got.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const batch = await within(
      receiver.receiveMessages(n - got.length, { maxWaitTimeInMs: left }),
      left + OP_MS,
      `receiveMessages from ${receiver.entityPath}`,
    );
    got.push(...batch);
  }
  return got;
}

/** Asserts that nothing arrives within QUIET_MS. */
export async function assertNothing(receiver, what) {
  const got = await within(
    receiver.receiveMessages(10, { maxWaitTimeInMs: QUIET_MS }),
    QUIET_MS + OP_MS,
    `receiveMessages from ${receiver.entityPath}`,
  );
  assert.deepEqual(got.map((m) => m.body), [], what);
}

export async function closeAll(...things) {
  for (const t of things) await within(t.close(), OP_MS, "close");
}

/** Asserts `promise` rejects with a ServiceBusError whose code is `code`. */
export async function rejectsWithCode(promise, code, what) {
  let err;
  try {
    await within(promise, OP_MS + 4_000, what);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected a ServiceBusError with code ${code}, but it succeeded`);
  assert.ok(
    isServiceBusError(err) && err.code === code,
    `${what}: expected ServiceBusError code ${code}, got ${err?.name} code=${err?.code}: ${err?.message}`,
  );
  return err;
}

export const seq = (m) => m.sequenceNumber.toNumber();

/** A test with a time limit whose failure message ends with the server's log tail. */
export function sbTest(name, fn) {
  test(name, { timeout: TEST_MS }, async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof Error && !String(e.message).includes(LOG_MARK)) e.message += `\n${logTail(3000)}`;
      throw e;
    }
  });
}

/** Starts Lapis with `config` before the tests of the importing file and stops it after them. */
export function useLapis(config) {
  before(async () => {
    amqpPort = await startLapis(config);
  });
  after(stopLapis);
}


async function stopLapis() {
  for (const c of clients) {
    await within(c.close(), 5_000, "closing a ServiceBusClient").catch(() => {});
  }
  if (proc && proc.exitCode === null) {
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await gone;
  }
  if (process.env.LAPIS_TEST_LOG) writeFileSync(process.env.LAPIS_TEST_LOG, log);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
