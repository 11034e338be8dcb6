// What the Service Bus JavaScript tests share, on top of lapis_server.mjs (which
// starts and stops the real binary and bounds every await): clients with no
// retries, and send/receive helpers whose every await is bounded (`within`) so a
// server that hangs fails the test instead of CI.

import assert from "node:assert/strict";
import { ServiceBusClient, isServiceBusError } from "@azure/service-bus";
import { KEY, connStr, lapisTest, rejection, track, within } from "./lapis_server.mjs";

export { KEY, KEY_NAME, connStr, logTail, sleep, useLapis, within } from "./lapis_server.mjs";

// Bounds. WAIT_MS is how long a receive waits when messages are expected;
// QUIET_MS how long it waits to show that nothing (more) arrives.
export const OP_MS = 8_000;
export const WAIT_MS = 3_000;
export const QUIET_MS = 800;

/** A client with no retries (the first failure is the one reported) and short operation timeouts. */
export function newClient(key = KEY) {
  return track(new ServiceBusClient(connStr(key), { retryOptions: { maxRetries: 0, timeoutInMs: OP_MS } }));
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
  const err = await rejection(promise, OP_MS + 4_000, what);
  assert.ok(
    isServiceBusError(err) && err.code === code,
    `${what}: expected ServiceBusError code ${code}, got ${err?.name} code=${err?.code}: ${err?.message}`,
  );
  return err;
}

export const seq = (m) => m.sequenceNumber.toNumber();

/** A test with a time limit whose failure message ends with the server's log tail. */
export const sbTest = lapisTest;
