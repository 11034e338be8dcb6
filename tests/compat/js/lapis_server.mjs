// What every AMQP JavaScript test file shares: starting a real Lapis binary
// ($LAPIS_BIN or <repo>/target/debug/lapis) on free loopback ports with a fresh
// data dir and a Config.json, the emulator-style connection string, and helpers
// that bound every await (`within`) so a server that hangs fails the test
// instead of CI. A failing test's message ends with the tail of the server's log.
// `useLapis(config, { blob: true })` also serves the Blob endpoint (what the
// Event Hubs checkpoint store uses): `blobUrl()` and `storageConnStr()` name it.
// sb_harness.mjs (Service Bus), eventhubs.test.mjs and
// eventhubs_checkpoints.test.mjs build on it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { acceptsTcp, awaitHealthy, freePort, sleep } from "./net_util.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..", "..");
const LAPIS_BIN = process.env.LAPIS_BIN || path.join(REPO, "target", "debug", "lapis");
export const KEY_NAME = "RootManageSharedAccessKey";
export const KEY = "SAS_KEY_VALUE";
export const TEST_MS = 30_000;
/** The storage account the Blob endpoint serves, with the well-known Azurite development key. */
export const BLOB_ACCOUNT = "devstoreaccount1";
export const BLOB_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export { sleep };

// ------------------------------------------------------------------ server

async function distinctFreePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

let proc;
let dataDir;
let log = "";
/** The AMQP port of the running server (a live binding: read it after `before`). */
export let amqpPort;
/** The HTTP port (admin API, Event Grid) of the running server. */
export let httpPort;
/** The Blob port of the running server, when `useLapis` asked for it (else undefined). */
export let blobPort;
const clients = [];

const LOG_MARK = "--- lapis log tail ---";

export function logTail(chars = 6000) {
  return `${LOG_MARK}\n${log.slice(-chars)}`;
}

/** Starts the server; resolves to { amqp, blob, http } (blob undefined unless `withBlob`). */
async function startLapis(config, withBlob) {
  assert.ok(existsSync(LAPIS_BIN), `lapis binary not found at ${LAPIS_BIN}: run \`cargo build -p lapis\` or set LAPIS_BIN`);
  const base = mkdtempSync(path.join(os.tmpdir(), "lapis-js-amqp-"));
  dataDir = base;
  const configPath = path.join(base, "config.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  for (let attempt = 0; attempt < 3; attempt++) {
    const [httpPort, port, blob] = await distinctFreePorts(withBlob ? 3 : 2);
    const data = path.join(base, `data-${attempt}`);
    log = "";
    proc = spawn(
      LAPIS_BIN,
      [
        "serve", "--data-dir", data, "--host", "127.0.0.1",
        "--queue-port", "0", "--blob-port", withBlob ? String(blob) : "0", "--kafka-port", "0",
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
    const alsoReady = async () => (await acceptsTcp(port)) && (!withBlob || (await acceptsTcp(blob)));
    if (await awaitHealthy(httpPort, { exited: () => exited, alsoReady })) return { amqp: port, blob, http: httpPort };
    if (!exited) {
      proc.kill("SIGKILL");
      const what = withBlob ? "AMQP and Blob accepting" : "AMQP accepting";
      throw new Error(`lapis did not become ready (/health 200 and ${what}) within 30 s\n${logTail()}`);
    }
    // exited early (e.g. a port got taken meanwhile): try other ports
  }
  throw new Error(`lapis failed to start three times\n${logTail()}`);
}

async function stopLapis() {
  for (const c of clients) {
    await within(c.close(), 5_000, "closing a client").catch(() => {});
  }
  if (proc && proc.exitCode === null) {
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await gone;
  }
  if (process.env.LAPIS_TEST_LOG) writeFileSync(process.env.LAPIS_TEST_LOG, log);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

/**
 * Starts Lapis with `config` before the tests of the importing file and stops it
 * after them; with `{ blob: true }` its Blob endpoint is on too (see `blobUrl`).
 */
export function useLapis(config, { blob = false } = {}) {
  before(async () => {
    ({ amqp: amqpPort, blob: blobPort, http: httpPort } = await startLapis(config, blob));
  });
  after(stopLapis);
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
export function connStr(key = KEY, entityPath) {
  return (
    `Endpoint=sb://localhost:${amqpPort};SharedAccessKeyName=${KEY_NAME};` +
    `SharedAccessKey=${key};UseDevelopmentEmulator=true;` +
    (entityPath ? `EntityPath=${entityPath}` : "")
  );
}

function requireBlob() {
  assert.ok(blobPort, "the Blob endpoint is off: start the server with useLapis(config, { blob: true })");
}

/** The Blob endpoint's account URL, `http://127.0.0.1:P/devstoreaccount1` (path style: the host is an IP). */
export function blobUrl() {
  requireBlob();
  return `http://127.0.0.1:${blobPort}/${BLOB_ACCOUNT}`;
}

/** The storage connection string a user writes for the Blob endpoint (what @azure/storage-blob parses). */
export function storageConnStr() {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${BLOB_ACCOUNT};AccountKey=${BLOB_KEY};` +
    `BlobEndpoint=${blobUrl()};`
  );
}

/** Registers a client (anything with `close()`) to be closed before the server stops. */
export function track(client) {
  clients.push(client);
  return client;
}

/** The error `promise` rejects with within `ms` (an assertion failure if it resolves). */
export async function rejection(promise, ms, what) {
  try {
    await within(promise, ms, what);
  } catch (e) {
    return e;
  }
  assert.fail(`${what}: expected an error, but it succeeded`);
}

/** A test with a time limit whose failure message ends with the server's log tail. */
export function lapisTest(name, fn, timeout = TEST_MS) {
  test(name, { timeout }, async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof Error && !String(e.message).includes(LOG_MARK)) e.message += `\n${logTail(3000)}`;
      throw e;
    }
  });
}
