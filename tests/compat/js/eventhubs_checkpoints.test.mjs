// Event Hubs checkpoints in Blob storage: the official JavaScript SDK
// (@azure/event-hubs with @azure/eventhubs-checkpointstore-blob and
// @azure/storage-blob, pinned in package.json) against a real Lapis binary, over
// AMQP 1.0 for the hub and Blob REST for the checkpoint store, through the
// connection strings a user would paste.
//
//   cd tests/compat/js && npm ci && node --test eventhubs_checkpoints.test.mjs
//
// The server is started by lapis_server.mjs with its Blob endpoint on and the
// Event Hubs emulator's Config.json declaring every hub used here, and killed
// afterwards. Each test uses its own hub and its own fresh container. The
// consumer clients balance partitions through the store with short intervals
// (LOAD_BALANCING) so that claiming and stealing take seconds, not minutes.
// Every await that talks to the server is bounded (`within`), every wait for
// the load balancer polls with a deadline, and every test has a timeout.
// Debugging: LAPIS_TEST_LOG=FILE keeps the server's log, DEBUG=rhea:frames shows
// the client's AMQP frames, AZURE_LOG_LEVEL=verbose the SDKs' own log (the
// checkpoint store's Blob requests and the load balancer's decisions).

import assert from "node:assert/strict";
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from "@azure/event-hubs";
import { BlobCheckpointStore } from "@azure/eventhubs-checkpointstore-blob";
import { ContainerClient } from "@azure/storage-blob";
import { KEY, connStr, lapisTest, sleep, storageConnStr, track, useLapis, within } from "./lapis_server.mjs";

const OP_MS = 8_000; // one SDK call
const BALANCE_MS = 15_000; // for the load balancer to reach a state (it moves one partition a loop)
const WAIT_MS = 8_000; // events that should arrive
const QUIET_MS = 1_500; // to show that nothing (more) arrives
const STABLE_MS = 2_000; // four load-balancing loops in which ownership must not move
const GROUP = "$Default";
const PARTITIONS = ["0", "1", "2", "3"];

// A loop every 500 ms; a claim not renewed for 4 s is up for grabs. Blob
// Last-Modified has one-second resolution, so an owner's claim looks up to ~1.5 s
// old between renewals: well inside the expiration.
const LOAD_BALANCING = { strategy: "balanced", updateIntervalInMs: 500, partitionOwnershipExpirationIntervalInMs: 4_000 };

const hub = (Name, PartitionCount) => ({
  Name, PartitionCount: String(PartitionCount), ConsumerGroups: [],
});

useLapis({
  UserConfig: {
    NamespaceConfig: [
      {
        Type: "EventHub",
        Name: "emulatorNs1",
        Entities: [hub("split", 4), hub("resume", 4), hub("ledger", 4)],
      },
    ],
    LoggingConfig: { Type: "File" },
  },
}, { blob: true });

// ------------------------------------------------------------------ helpers

const CLIENT_OPTIONS = { retryOptions: { maxRetries: 0, timeoutInMs: OP_MS } };
// One try each, bounded: a Blob request the server fumbles shows its real status at once.
const STORAGE_OPTIONS = { retryOptions: { maxTries: 1, tryTimeoutInMs: OP_MS } };

/** A BlobCheckpointStore on a container made for this test (created here, so it is fresh). */
async function freshStore(name) {
  const container = new ContainerClient(storageConnStr(), name, STORAGE_OPTIONS);
  await within(container.create(), OP_MS, `create container ${name}`);
  return new BlobCheckpointStore(container);
}

function producer(hubName) {
  return track(new EventHubProducerClient(connStr(KEY, hubName), CLIENT_OPTIONS));
}

/** Sends `bodiesByPartition[p]` to each partition p, one batch a partition. */
async function sendTo(client, bodiesByPartition) {
  for (const [partitionId, bodies] of Object.entries(bodiesByPartition)) {
    if (!bodies.length) continue;
    await within(client.sendBatch(bodies.map((body) => ({ body })), { partitionId }), OP_MS, `sendBatch to ${partitionId}`);
  }
}

/** `count(p)` bodies for each partition p, named after the partition and `phase`. */
const bodies = (phase, count) =>
  Object.fromEntries(PARTITIONS.map((p) => [p, Array.from({ length: count(p) }, (_, i) => `p${p}-${phase}${i}`)]));

/** Polls `check` until it holds or `ms` pass; then asserts it, with `detail()` in the message. */
async function until(check, ms, what, detail = () => "") {
  const deadline = Date.now() + ms;
  while (!(await check()) && Date.now() < deadline) await sleep(50);
  assert.ok(await check(), `${what} within ${ms} ms; ${detail()}`);
}

/**
 * An EventHubConsumerClient named `identifier` on `hubName` with the checkpoint
 * store, subscribed to every partition from the earliest event (used only where
 * no checkpoint exists). Each event is checkpointed with
 * context.updateCheckpoint(event) and recorded once that has succeeded.
 */
function processor(hubName, store, identifier) {
  const client = track(new EventHubConsumerClient(GROUP, connStr(KEY, hubName), store, {
    ...CLIENT_OPTIONS, identifier, loadBalancingOptions: LOAD_BALANCING,
  }));
  const seen = []; // { partitionId, body, sequenceNumber, offset }, in processing order
  const errors = []; // { partitionId, code, message }
  const active = new Set(); // partitions between processInitialize and processClose
  const closes = []; // { partitionId, reason }
  const sub = client.subscribe({
    processInitialize: async (ctx) => { active.add(ctx.partitionId); },
    processEvents: async (events, ctx) => {
      for (const event of events) {
        await ctx.updateCheckpoint(event);
        const { body, sequenceNumber, offset } = event;
        seen.push({ partitionId: ctx.partitionId, body, sequenceNumber, offset });
      }
    },
    processError: async (err, ctx) => {
      errors.push({ partitionId: ctx.partitionId, code: err?.code ?? err?.name, message: err?.message });
    },
    processClose: async (reason, ctx) => {
      active.delete(ctx.partitionId);
      closes.push({ partitionId: ctx.partitionId, reason });
    },
  }, { startPosition: earliestEventPosition, maxBatchSize: 10, maxWaitTimeInSeconds: 1 });
  return {
    identifier,
    client,
    seen,
    errors,
    active,
    closes,
    /** The bodies this processor handled on `partitionId`, in order. */
    bodiesOf: (partitionId) => seen.filter((e) => e.partitionId === partitionId).map((e) => e.body),
    describe: () => `${identifier}: active [${[...active].sort()}], ` +
      `seen ${JSON.stringify(seen.map((e) => e.body))}, closes ${JSON.stringify(closes)}, ` +
      `errors ${errors.map((e) => `${e.partitionId}/${e.code}: ${e.message}`).join(" | ") || "none"}`,
    async close() {
      await within(sub.close(), OP_MS, `close ${identifier}'s subscription`);
      await within(client.close(), OP_MS, `close ${identifier}'s client`);
    },
  };
}

/** The store's ownership records: partition id -> owner id ("" when abandoned), sorted by partition. */
async function ownership(store, client) {
  const list = await within(store.listOwnership(client.fullyQualifiedNamespace, client.eventHubName, GROUP), OP_MS, "listOwnership");
  return Object.fromEntries(list.map((o) => [o.partitionId, o.ownerId]).sort());
}

/** The store's checkpoints: partition id -> { sequenceNumber, offset }. */
async function checkpoints(store, client) {
  const list = await within(store.listCheckpoints(client.fullyQualifiedNamespace, client.eventHubName, GROUP), OP_MS, "listCheckpoints");
  return Object.fromEntries(list.map((c) => [c.partitionId, { sequenceNumber: c.sequenceNumber, offset: c.offset }]).sort());
}

const ownedBy = (owners, id) => Object.keys(owners).filter((p) => owners[p] === id).sort();
const sameSet = (set, list) => set.size === list.length && list.every((p) => set.has(p));

/** Whether the store says `a` and `b` own two partitions each and each is reading exactly those. */
async function splitTwoTwo(store, a, b) {
  const owners = await ownership(store, a.client);
  const ofA = ownedBy(owners, a.identifier);
  const ofB = ownedBy(owners, b.identifier);
  return ofA.length === 2 && ofB.length === 2 && sameSet(a.active, ofA) && sameSet(b.active, ofB) ? { ofA, ofB } : null;
}

/**
 * Two processors, A then B, sharing a fresh store on `hubName`. A starts alone
 * and handles (and checkpoints) the first events on all four partitions; then B
 * joins, takes two partitions from A, and the split holds for STABLE_MS; then a
 * second round of events is sent. Returns once every event has been handled,
 * with both processors still running.
 */
async function twoProcessorsSplit(hubName) {
  const store = await freshStore(`${hubName}-checkpoints`);
  const p = producer(hubName);
  const first = bodies("a", () => 3);
  await sendTo(p, first);

  const a = processor(hubName, store, "processor-a");
  await until(async () => {
    const owners = await ownership(store, a.client);
    return ownedBy(owners, a.identifier).length === 4 && a.active.size === 4 && a.seen.length === 12;
  }, BALANCE_MS, "A alone owns all four partitions and has handled the 12 first events", a.describe);
  for (const id of PARTITIONS) assert.deepEqual(a.bodiesOf(id), first[id], `A read partition ${id} from the start, once`);

  const b = processor(hubName, store, "processor-b");
  let split;
  await until(async () => (split = await splitTwoTwo(store, a, b)) !== null, BALANCE_MS,
    "B takes two of A's partitions (2/2 in listOwnership and in processInitialize/processClose)",
    () => `${a.describe()}\n${b.describe()}`);
  const stableUntil = Date.now() + STABLE_MS;
  while (Date.now() < stableUntil) {
    const now = await splitTwoTwo(store, a, b);
    assert.deepEqual(now, split, `the 2/2 split holds for ${STABLE_MS} ms\n${a.describe()}\n${b.describe()}`);
    await sleep(250);
  }

  const second = bodies("b", () => 3);
  await sendTo(p, second);
  await until(() => a.seen.length + b.seen.length >= 24, WAIT_MS, "the 12 second events are handled",
    () => `${a.describe()}\n${b.describe()}`);
  return { store, producer: p, a, b, split, first, second };
}

// ------------------------------------------------------------------ tests

lapisTest("two consumer clients sharing a BlobCheckpointStore split 4 partitions 2/2 and handle every event once", async () => {
  const { a, b, split, first, second } = await twoProcessorsSplit("split");
  try {
    await sleep(QUIET_MS);
    for (const id of split.ofA) {
      assert.deepEqual(a.bodiesOf(id), [...first[id], ...second[id]], `A kept partition ${id}: all its events, once`);
      assert.deepEqual(b.bodiesOf(id), [], `B never read A's partition ${id}`);
    }
    for (const id of split.ofB) {
      assert.deepEqual(a.bodiesOf(id), first[id], `A handled partition ${id} until B took it`);
      // B starts from earliestEventPosition unless a checkpoint exists: re-reading A's events would show here.
      assert.deepEqual(b.bodiesOf(id), second[id], `B took partition ${id} from A's checkpoint`);
    }
    // The partitions B took were taken from A's receivers (owner level 0 over owner level 0).
    assert.deepEqual(a.errors.map((e) => [e.partitionId, e.code]).sort(),
      split.ofB.map((id) => [id, "ReceiverDisconnectedError"]), a.describe());
    assert.deepEqual(b.errors, [], b.describe());
  } finally {
    await a.close();
    await b.close();
  }
  const closes = (proc) => proc.closes.map((c) => [c.partitionId, c.reason]).sort();
  assert.deepEqual(closes(a), [
    ...split.ofA.map((id) => [id, "Shutdown"]), ...split.ofB.map((id) => [id, "OwnershipLost"]),
  ].sort(), "processClose on A: the taken partitions as OwnershipLost, the rest at close");
  assert.deepEqual(closes(b), split.ofB.map((id) => [id, "Shutdown"]), "processClose on B: its partitions at close");
}, 45_000);

lapisTest("after both close, a new subscriber resumes from the checkpoints: it reads exactly the events sent meanwhile", async () => {
  const { store, producer: p, a, b } = await twoProcessorsSplit("resume");
  await a.close();
  await b.close();
  const owners = await ownership(store, a.client);
  assert.deepEqual(owners, Object.fromEntries(PARTITIONS.map((id) => [id, ""])), "closing abandoned every claim");

  const meanwhile = bodies("c", (id) => Number(id) + 1); // 1, 2, 3 and 4 events
  await sendTo(p, meanwhile);
  const c = processor("resume", store, "processor-c");
  try {
    await until(() => c.seen.length >= 10, BALANCE_MS, "the new subscriber claims the partitions and reads the 10 new events",
      c.describe);
    await sleep(QUIET_MS);
    for (const id of PARTITIONS) {
      // From earliestEventPosition a partition without a checkpoint would start again at p<id>-a0.
      assert.deepEqual(c.bodiesOf(id), meanwhile[id], `partition ${id}: only what was sent after the close`);
    }
    assert.deepEqual(c.errors, [], c.describe());
    assert.equal(c.active.size, 4, c.describe());
  } finally {
    await c.close();
  }
}, 45_000);

lapisTest("listCheckpoints holds each partition's last event: the sequence number and offset getPartitionProperties reports", async () => {
  const store = await freshStore("ledger-checkpoints");
  const p = producer("ledger");
  const counts = { 0: 3, 1: 1, 2: 4, 3: 2 };
  const sent = bodies("x", (id) => counts[id]);
  await sendTo(p, sent);
  const reader = processor("ledger", store, "processor-ledger");
  try {
    await until(() => reader.seen.length >= 10, BALANCE_MS, "the 10 events are handled", reader.describe);
    assert.deepEqual(await checkpoints(store, reader.client), Object.fromEntries(PARTITIONS.map((id) => {
      const last = reader.seen.filter((e) => e.partitionId === id).at(-1);
      return [id, { sequenceNumber: last.sequenceNumber, offset: String(last.offset) }];
    })), "while running: the last handled event of each partition");
  } finally {
    await reader.close();
  }
  for (const id of PARTITIONS) assert.deepEqual(reader.bodiesOf(id), sent[id], `partition ${id} read once, in order`);
  assert.deepEqual(reader.errors, [], reader.describe());

  const stored = await checkpoints(store, reader.client);
  for (const id of PARTITIONS) {
    const props = await within(p.getPartitionProperties(id), OP_MS, `getPartitionProperties(${id})`);
    assert.equal(props.lastEnqueuedSequenceNumber, counts[id] - 1, `partition ${id}'s last sequence number`);
    assert.deepEqual(stored[id], { sequenceNumber: props.lastEnqueuedSequenceNumber, offset: String(props.lastEnqueuedOffset) },
      `partition ${id}'s checkpoint after the close`);
  }
});
