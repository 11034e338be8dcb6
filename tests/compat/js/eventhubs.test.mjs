// Event Hubs compatibility: the official JavaScript SDK (@azure/event-hubs,
// pinned in package.json) against a real Lapis binary over AMQP 1.0, through
// the emulator-style connection string a user would paste.
//
//   cd tests/compat/js && npm ci && node --test eventhubs.test.mjs
//
// The server is started by lapis_server.mjs with the Event Hubs emulator's
// Config.json declaring every hub used here, and killed afterwards. Each test
// uses its own hub (or partition) so that none depends on another's leftovers.
// Every await that talks to the server is bounded (`within`) and every test has
// a timeout, so a server that hangs fails the test instead of CI. Debugging:
// LAPIS_TEST_LOG=FILE keeps the server's log, DEBUG=rhea:frames shows the
// client's AMQP frames, AZURE_LOG_LEVEL=verbose the SDK's own log.

import assert from "node:assert/strict";
import {
  EventHubConsumerClient, EventHubProducerClient, earliestEventPosition, latestEventPosition,
} from "@azure/event-hubs";
import { KEY, connStr, lapisTest, rejection, sleep, track, useLapis, within } from "./lapis_server.mjs";

const OP_MS = 8_000; // one SDK call
const WAIT_MS = 5_000; // events that should arrive
const QUIET_MS = 1_000; // to show that nothing (more) arrives
const ATTACH_MS = 1_500; // for a subscription's receiver link to be attached

const hub = (Name, PartitionCount, ...groups) => ({
  Name, PartitionCount: String(PartitionCount), ConsumerGroups: groups.map((g) => ({ Name: g })),
});

useLapis({
  UserConfig: {
    NamespaceConfig: [
      {
        Type: "EventHub",
        Name: "emulatorNs1",
        Entities: [
          hub("eh1", 2, "cg1"),
          hub("props", 2),
          hub("keys", 2),
          hub("positions", 1),
          hub("roundtrip", 1),
          hub("owners", 1),
          hub("limits", 2),
        ],
      },
    ],
    LoggingConfig: { Type: "File" },
  },
});

// ------------------------------------------------------------------ helpers

const CLIENT_OPTIONS = { retryOptions: { maxRetries: 0, timeoutInMs: OP_MS } };

function producer(hubName, key = KEY) {
  return track(new EventHubProducerClient(connStr(key, hubName), CLIENT_OPTIONS));
}

/** Sends `bodies` as one batch made by createBatch(`batchOptions`). */
async function sendBodies(client, bodies, batchOptions) {
  const batch = await within(client.createBatch(batchOptions), OP_MS, "createBatch");
  for (const body of bodies) assert.ok(batch.tryAdd({ body }), `tryAdd ${body}`);
  await within(client.sendBatch(batch), OP_MS, `sendBatch ${JSON.stringify(batchOptions)}`);
}

const partition = (client, id) => within(client.getPartitionProperties(id), OP_MS, `getPartitionProperties(${id})`);

/**
 * `EventHubConsumerClient.subscribe` on `partitionId` (or every partition when
 * null), keeping every event and every error passed to processError.
 */
function subscribe(hubName, partitionId, options, group = "$Default") {
  const client = track(new EventHubConsumerClient(group, connStr(KEY, hubName), CLIENT_OPTIONS));
  const events = [];
  const errors = [];
  const handlers = {
    processEvents: async (batch, ctx) => {
      for (const e of batch) events.push({ ...e, partitionId: ctx.partitionId });
    },
    processError: async (err) => { errors.push(err); },
  };
  const opts = { maxBatchSize: 10, maxWaitTimeInSeconds: 1, ...options };
  const sub = partitionId === null ? client.subscribe(handlers, opts) : client.subscribe(partitionId, handlers, opts);
  const until = async (check, ms, what) => {
    const deadline = Date.now() + ms;
    while (!check() && Date.now() < deadline) await sleep(25);
    assert.ok(check(), `${what} within ${ms} ms; events: ${JSON.stringify(events.map((e) => e.body))}; ` +
      `errors: ${errors.map((e) => `${e.code}: ${e.message}`).join(" | ")}`);
  };
  return {
    events,
    errors,
    /** The bodies of the first `n` events, once `n` have arrived. */
    async bodies(n, ms = WAIT_MS) {
      await until(() => events.length >= n, ms, `${n} events on ${hubName}/${group}`);
      return events.slice(0, n).map((e) => e.body);
    },
    async firstError(ms = WAIT_MS) {
      await until(() => errors.length > 0, ms, `an error on ${hubName}/${group}`);
      return errors[0];
    },
    async close() {
      await within(sub.close(), OP_MS, "close the subscription");
      await within(client.close(), OP_MS, "close the consumer client");
    },
  };
}

/** What subscribe from `startPosition` on a partition reads of `n` events (and no more). */
async function readFrom(hubName, startPosition, n) {
  const sub = subscribe(hubName, "0", { startPosition });
  try {
    const got = await sub.bodies(n);
    await sleep(QUIET_MS);
    assert.deepEqual(sub.events.map((e) => e.body), got, `no more than ${n} events`);
    assert.deepEqual(sub.errors, []);
    return got;
  } finally {
    await sub.close();
  }
}

/** Asserts `promise` rejects with a MessagingError whose code is `code`. */
async function rejectsWithCode(promise, code, what) {
  const err = await rejection(promise, OP_MS + 4_000, what);
  assert.equal(err?.code, code, `${what}: expected code ${code}, got ${err?.name} code=${err?.code}: ${err?.message}`);
  return err;
}

// ------------------------------------------------------------------ tests

lapisTest("getEventHubProperties and getPartitionProperties, before and after a send", async () => {
  const p = producer("props");
  const props = await within(p.getEventHubProperties(), OP_MS, "getEventHubProperties");
  assert.equal(props.name, "props");
  assert.deepEqual(props.partitionIds, ["0", "1"]);
  assert.ok(props.createdOn instanceof Date && props.createdOn <= new Date(), `createdOn ${props.createdOn}`);
  assert.ok(props.createdOn > new Date(Date.now() - 3_600_000), `createdOn ${props.createdOn} is recent`);
  assert.deepEqual(await within(p.getPartitionIds(), OP_MS, "getPartitionIds"), ["0", "1"]);

  const empty = await partition(p, "1");
  assert.equal(empty.eventHubName, "props");
  assert.equal(empty.partitionId, "1");
  assert.equal(empty.isEmpty, true);
  assert.equal(empty.lastEnqueuedSequenceNumber, -1);

  const before = new Date(Date.now() - 1000);
  await sendBodies(p, ["one", "two"], { partitionId: "1" });
  const full = await partition(p, "1");
  assert.equal(full.isEmpty, false);
  assert.equal(full.beginningSequenceNumber, 0);
  assert.equal(full.lastEnqueuedSequenceNumber, 1);
  assert.equal(typeof full.lastEnqueuedOffset, "string");
  assert.ok(full.lastEnqueuedOnUtc >= before && full.lastEnqueuedOnUtc <= new Date(Date.now() + 1000),
    `lastEnqueuedOnUtc ${full.lastEnqueuedOnUtc}`);
  assert.equal((await partition(p, "0")).isEmpty, true, "the other partition is untouched");
});

lapisTest("createBatch and sendBatch by partition key and id: one key lands in one partition", async () => {
  const p = producer("keys");
  await sendBodies(p, ["k0", "k1"], { partitionKey: "track-42" });
  await within(p.sendBatch([{ body: "k2" }, { body: "k3" }], { partitionKey: "track-42" }), OP_MS, "sendBatch(array, key)");
  await within(p.sendBatch([{ body: "by id" }], { partitionId: "0" }), OP_MS, "sendBatch(array, id)");
  // Azure's hash (Jenkins lookup3) of "track-42" over 2 partitions is partition 1.
  assert.equal((await partition(p, "1")).lastEnqueuedSequenceNumber, 3);
  assert.equal((await partition(p, "0")).lastEnqueuedSequenceNumber, 0);

  const sub = subscribe("keys", null, { startPosition: earliestEventPosition });
  try {
    await sub.bodies(5);
    const keyed = sub.events.filter((e) => e.partitionKey === "track-42");
    assert.deepEqual(keyed.map((e) => [e.partitionId, e.body, e.sequenceNumber]),
      [["1", "k0", 0], ["1", "k1", 1], ["1", "k2", 2], ["1", "k3", 3]]);
    const byId = sub.events.filter((e) => !e.partitionKey);
    assert.deepEqual(byId.map((e) => [e.partitionId, e.body, e.sequenceNumber]), [["0", "by id", 0]]);
    assert.deepEqual(sub.errors, []);
  } finally {
    await sub.close();
  }
});

lapisTest("subscribe from the earliest event, a sequence number, an enqueued time, or the latest", async () => {
  const p = producer("positions");
  await sendBodies(p, ["e0", "e1", "e2", "e3", "e4"], { partitionId: "0" });
  await sleep(50);
  const marker = new Date();
  await sleep(50);
  await sendBodies(p, ["e5", "e6"], { partitionId: "0" });
  const all = ["e0", "e1", "e2", "e3", "e4", "e5", "e6"];

  assert.deepEqual(await readFrom("positions", earliestEventPosition, 7), all);
  assert.deepEqual(await readFrom("positions", { sequenceNumber: 2, isInclusive: true }, 5), all.slice(2));
  assert.deepEqual(await readFrom("positions", { sequenceNumber: 2 }, 4), all.slice(3));
  assert.deepEqual(await readFrom("positions", { enqueuedOn: marker }, 2), ["e5", "e6"]);

  const latest = subscribe("positions", "0", { startPosition: latestEventPosition });
  try {
    await sleep(ATTACH_MS);
    assert.deepEqual(latest.events, [], "nothing sent before the subscription");
    await sendBodies(p, ["after"], { partitionId: "0" });
    assert.deepEqual(await latest.bodies(1), ["after"]);
    assert.equal(latest.events[0].sequenceNumber, 7);
  } finally {
    await latest.close();
  }
});

lapisTest("body, application properties of several types, contentType, correlationId, messageId round-trip", async () => {
  const p = producer("roundtrip");
  const at = new Date("2024-05-06T07:08:09.123Z");
  const properties = { track: "t-1", seconds: 245, big: 2 ** 40, negative: -7, score: 4.5, liked: false, at };
  await within(p.sendBatch([
    { body: Buffer.from([0, 1, 2, 0xff]), properties, contentType: "application/octet-stream", correlationId: "corr-1", messageId: "msg-1" },
    { body: { title: "Blue", plays: [1, 2] }, contentType: "application/json" },
  ], { partitionId: "0" }), OP_MS, "sendBatch");

  const sub = subscribe("roundtrip", "0", { startPosition: earliestEventPosition });
  try {
    await sub.bodies(2);
    const [bin, json] = sub.events;
    assert.deepEqual(Buffer.from(bin.body), Buffer.from([0, 1, 2, 0xff]));
    // The SDK hands timestamps back as epoch milliseconds (eventData.js convertDatesToNumbers).
    assert.deepEqual(bin.properties, { ...properties, at: at.getTime() });
    assert.equal(bin.contentType, "application/octet-stream");
    assert.equal(bin.correlationId, "corr-1");
    assert.equal(bin.messageId, "msg-1");
    assert.equal(bin.sequenceNumber, 0);
    assert.equal(typeof bin.offset, "string");
    assert.ok(bin.enqueuedTimeUtc instanceof Date && bin.enqueuedTimeUtc <= new Date(Date.now() + 1000));
    assert.deepEqual(json.body, { title: "Blue", plays: [1, 2] });
    assert.equal(json.contentType, "application/json");
    assert.equal(json.sequenceNumber, 1);
  } finally {
    await sub.close();
  }
});

lapisTest("two consumer groups read the same events independently", async () => {
  const p = producer("eh1");
  await sendBodies(p, ["g1", "g2"], { partitionId: "0" });
  const byDefault = subscribe("eh1", "0", { startPosition: earliestEventPosition });
  const byCg1 = subscribe("eh1", "0", { startPosition: earliestEventPosition }, "cg1");
  try {
    assert.deepEqual(await byDefault.bodies(2), ["g1", "g2"]);
    assert.deepEqual(await byCg1.bodies(2), ["g1", "g2"]);
    await sendBodies(p, ["g3"], { partitionId: "0" });
    assert.deepEqual(await byDefault.bodies(3), ["g1", "g2", "g3"]);
    assert.deepEqual(await byCg1.bodies(3), ["g1", "g2", "g3"]);
    assert.deepEqual([...byDefault.errors, ...byCg1.errors], []);
  } finally {
    await byDefault.close();
    await byCg1.close();
  }
});

lapisTest("ownerLevel 2 takes the partition from ownerLevel 1 (ReceiverDisconnectedError)", async () => {
  const p = producer("owners");
  await sendBodies(p, ["before"], { partitionId: "0" });
  const first = subscribe("owners", "0", { startPosition: earliestEventPosition, ownerLevel: 1 });
  let second;
  try {
    assert.deepEqual(await first.bodies(1), ["before"], "the first subscription reads the partition");
    second = subscribe("owners", "0", { startPosition: earliestEventPosition, ownerLevel: 2 });
    const err = await first.firstError();
    assert.equal(err.code, "ReceiverDisconnectedError", `${err.name} ${err.code}: ${err.message}`);
    assert.deepEqual(await second.bodies(1), ["before"], "the second subscription reads the partition");
    await sendBodies(p, ["for the owner"], { partitionId: "0" });
    assert.deepEqual(await second.bodies(2), ["before", "for the owner"]);
    await sleep(QUIET_MS);
    assert.deepEqual(first.events.map((e) => e.body), ["before"], "the displaced subscription got nothing more");
    assert.deepEqual(second.errors, []);
  } finally {
    await first.close();
    if (second) await second.close();
  }
});

lapisTest("an unknown hub is MessagingEntityNotFoundError", async () => {
  const p = producer("no-such-hub");
  await rejectsWithCode(p.getEventHubProperties(), "MessagingEntityNotFoundError", "getEventHubProperties");
  await rejectsWithCode(p.sendBatch([{ body: "lost" }]), "MessagingEntityNotFoundError", "sendBatch");
});

lapisTest("a wrong key is UnauthorizedError", async () => {
  const p = producer("limits", "V1JPTkc=");
  await rejectsWithCode(p.getEventHubProperties(), "UnauthorizedError", "getEventHubProperties");
  await rejectsWithCode(p.sendBatch([{ body: "intruder" }], { partitionId: "1" }), "UnauthorizedError", "sendBatch");
  assert.equal((await partition(producer("limits"), "1")).isEmpty, true, "nothing was stored");
});

lapisTest("a partition that does not exist is ArgumentOutOfRangeError", async () => {
  const p = producer("limits");
  await rejectsWithCode(p.getPartitionProperties("9"), "ArgumentOutOfRangeError", "getPartitionProperties(9)");
  await rejectsWithCode(p.sendBatch([{ body: "nowhere" }], { partitionId: "9" }), "ArgumentOutOfRangeError", "sendBatch to 9");
  const sub = subscribe("limits", "9", { startPosition: earliestEventPosition });
  try {
    const err = await sub.firstError();
    assert.equal(err.code, "ArgumentOutOfRangeError", `${err.name} ${err.code}: ${err.message}`);
  } finally {
    await sub.close();
  }
});

lapisTest("an event over 1 MiB: tryAdd refuses it client-side, the server rejects it (MessageTooLargeError)", async () => {
  const p = producer("limits");
  const huge = { body: Buffer.alloc(1024 * 1024 + 10, 0x78) };
  const batch = await within(p.createBatch({ partitionId: "0" }), OP_MS, "createBatch");
  assert.equal(batch.maxSizeInBytes, 1024 * 1024, "the sender link's max-message-size");
  assert.equal(batch.tryAdd(huge), false, "client-side: the batch has no room");
  // An array is not sized by the SDK, so this reaches the server.
  await rejectsWithCode(p.sendBatch([huge], { partitionId: "0" }), "MessageTooLargeError", "sendBatch(array) over 1 MiB");
  assert.equal((await partition(p, "0")).isEmpty, true, "nothing was stored");
  await within(p.sendBatch([{ body: "small" }], { partitionId: "0" }), OP_MS, "a send after the refusal");
  assert.equal((await partition(p, "0")).lastEnqueuedSequenceNumber, 0);
});
