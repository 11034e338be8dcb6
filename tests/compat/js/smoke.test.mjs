// Smoke test: the official JavaScript SDK (@azure/storage-queue, pinned in
// package.json) against a real Lapis binary, through the emulator-style
// connection string a user would paste.
//
//   cd tests/compat/js && npm ci && node --test smoke.test.mjs
//
// The binary is $LAPIS_BIN or <repo>/target/debug/lapis. It is started on
// free loopback ports with a fresh data dir and killed afterwards. The host is
// 127.0.0.1 (an IP), so the SDK uses path-style URLs (/devstoreaccount1/<queue>)
// whatever the port.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { QueueServiceClient } from "@azure/storage-queue";
import { awaitHealthy, freePort } from "./net_util.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..", "..");
const LAPIS_BIN = process.env.LAPIS_BIN || path.join(REPO, "target", "debug", "lapis");
const ACCOUNT = "devstoreaccount1";
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";



let proc;
let dataDir;
let log = "";
let service;

async function startLapis() {
  assert.ok(existsSync(LAPIS_BIN), `lapis binary not found at ${LAPIS_BIN}: run \`cargo build -p lapis\` or set LAPIS_BIN`);
  dataDir = mkdtempSync(path.join(os.tmpdir(), "lapis-js-"));
  for (let attempt = 0; attempt < 3; attempt++) {
    const queuePort = await freePort();
    let httpPort = await freePort();
    while (httpPort === queuePort) httpPort = await freePort();
    log = "";
    proc = spawn(
      LAPIS_BIN,
      [
        "serve", "--data-dir", dataDir, "--host", "127.0.0.1",
        "--queue-port", String(queuePort), "--http-port", String(httpPort),
        "--blob-port", "0", "--amqp-port", "0", "--kafka-port", "0",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    proc.stdout.on("data", (d) => { log = (log + d).slice(-20000); });
    proc.stderr.on("data", (d) => { log = (log + d).slice(-20000); });
    let exited = false;
    proc.once("exit", () => { exited = true; });
    if (await awaitHealthy(httpPort, { exited: () => exited })) return queuePort;
    if (!exited) {
      proc.kill("SIGKILL");
      throw new Error(`lapis did not answer /health with 200 within 30 s\n${log}`);
    }
    // exited early (e.g. a port got taken meanwhile): try other ports
  }
  throw new Error(`lapis failed to start three times\n${log}`);
}

before(async () => {
  const queuePort = await startLapis();
  const connStr =
    `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};` +
    `QueueEndpoint=http://127.0.0.1:${queuePort}/${ACCOUNT};`;
  // No retries: a failure shows the real status at once.
  service = QueueServiceClient.fromConnectionString(connStr, { retryOptions: { maxTries: 1 } });
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await gone;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("queue lifecycle with the official JS SDK", async () => {
  const queueName = `js-smoke-${randomUUID().slice(0, 8)}`;
  const queue = service.getQueueClient(queueName);
  assert.equal(queue.accountName, ACCOUNT, "path-style URL: account parsed from the path");

  // create queue
  const created = await service.createQueue(queueName);
  assert.equal(created._response.status, 201, "create queue");
  assert.ok(created.requestId, "x-ms-request-id on create");
  assert.ok(created.date instanceof Date, "Date on create");
  assert.equal(await queue.exists(), true);

  // send
  const text = `hello from js <&> é ${randomUUID()}`;
  const sent = await queue.sendMessage(text);
  assert.equal(sent._response.status, 201, "send");
  assert.ok(sent.messageId, "messageId");
  assert.ok(sent.popReceipt, "popReceipt");
  assert.ok(sent.insertedOn instanceof Date && sent.expiresOn instanceof Date);
  assert.ok(sent.expiresOn > sent.insertedOn, "expires after insertion");

  // peek: visible, dequeue count 0, no pop receipt
  const peeked = await queue.peekMessages({ numberOfMessages: 32 });
  assert.equal(peeked.peekedMessageItems.length, 1, "peek one");
  assert.equal(peeked.peekedMessageItems[0].messageId, sent.messageId);
  assert.equal(peeked.peekedMessageItems[0].messageText, text);
  assert.equal(peeked.peekedMessageItems[0].dequeueCount, 0);

  // receive
  const received = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 30 });
  assert.equal(received.receivedMessageItems.length, 1, "receive one");
  const msg = received.receivedMessageItems[0];
  assert.equal(msg.messageId, sent.messageId);
  assert.equal(msg.messageText, text);
  assert.equal(msg.dequeueCount, 1);
  assert.ok(msg.popReceipt);
  assert.ok(msg.nextVisibleOn instanceof Date && msg.nextVisibleOn > new Date(Date.now() - 5000));

  // invisible now
  const again = await queue.receiveMessages();
  assert.equal(again.receivedMessageItems.length, 0, "hidden after receive");
  const peekHidden = await queue.peekMessages();
  assert.equal(peekHidden.peekedMessageItems.length, 0, "peek skips invisible messages");

  // update: new text, visible at once, new pop receipt
  const updatedText = "updated by js";
  const updated = await queue.updateMessage(msg.messageId, msg.popReceipt, updatedText, 0);
  assert.equal(updated._response.status, 204, "update");
  assert.ok(updated.popReceipt, "x-ms-popreceipt on update");
  assert.notEqual(updated.popReceipt, msg.popReceipt, "update issues a new pop receipt");
  assert.ok(updated.nextVisibleOn instanceof Date, "x-ms-time-next-visible on update");

  // the old pop receipt no longer works
  await assert.rejects(
    queue.deleteMessage(msg.messageId, msg.popReceipt),
    (err) => [400, 404].includes(err.statusCode),
    "delete with a stale pop receipt fails",
  );

  const peekUpdated = await queue.peekMessages();
  assert.equal(peekUpdated.peekedMessageItems.length, 1);
  assert.equal(peekUpdated.peekedMessageItems[0].messageText, updatedText);
  assert.equal(peekUpdated.peekedMessageItems[0].dequeueCount, 1);

  // delete with the pop receipt from the update
  const deleted = await queue.deleteMessage(msg.messageId, updated.popReceipt);
  assert.equal(deleted._response.status, 204, "delete message");
  const empty = await queue.peekMessages({ numberOfMessages: 32 });
  assert.equal(empty.peekedMessageItems.length, 0, "empty after delete");
  const props = await queue.getProperties();
  assert.equal(props.approximateMessagesCount, 0);

  // list queues: ours is there, with the prefix filter too
  const names = [];
  for await (const item of service.listQueues()) names.push(item.name);
  assert.ok(names.includes(queueName), `listQueues: ${JSON.stringify(names)}`);
  const prefixed = [];
  for await (const item of service.listQueues({ prefix: "js-smoke-" })) prefixed.push(item.name);
  assert.ok(prefixed.includes(queueName) && prefixed.every((n) => n.startsWith("js-smoke-")));

  // delete queue
  const dq = await service.deleteQueue(queueName);
  assert.equal(dq._response.status, 204, "delete queue");
  assert.equal(await queue.exists(), false);
  await assert.rejects(queue.getProperties(), (err) => err.statusCode === 404);
});
