// Event Grid delivery with the official JavaScript SDKs against a real Lapis binary:
// events published with @azure/eventgrid reach a webhook served by this test (it
// answers the validation handshake) and are read back with EventGridDeserializer;
// a namespace topic's queue subscription is driven with @azure/eventgrid-namespaces
// (EventGridSenderClient, EventGridReceiverClient: receive, acknowledge, release,
// reject, renew).
//
//   cd tests/compat/js && npm ci && node --test eventgrid_delivery.test.mjs

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { AzureKeyCredential, EventGridDeserializer, EventGridPublisherClient, isSystemEvent } from "@azure/eventgrid";
import { EventGridReceiverClient, EventGridSenderClient } from "@azure/eventgrid-namespaces";
import { INSECURE, KEY1, KEY2, useTopics } from "./eventgrid_support.mjs";
import { KEY, KEY_NAME, httpPort, lapisTest, within } from "./lapis_server.mjs";

const OP_MS = 15_000;

useTopics([
  { Name: "tracks", InputSchema: "EventGridSchema" },
  { Name: "likes", Kind: "Namespace" },
]);

/** The admin API, signed as the other admin clients sign it. */
async function admin(method, path, body) {
  const url = `http://127.0.0.1:${httpPort}/admin/eventgrid/${path}`;
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sr = encodeURIComponent(url);
  const sig = encodeURIComponent(createHmac("sha256", KEY).update(`${sr}\n${expiry}`).digest("base64"));
  const r = await fetch(url, {
    method,
    headers: { authorization: `SharedAccessSignature sr=${sr}&sig=${sig}&se=${expiry}&skn=${KEY_NAME}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}

/** A webhook as a JS user writes one: validation events answered, notifications kept. */
function webhook() {
  const received = [];
  const deserializer = new EventGridDeserializer();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", async () => {
      const events = await deserializer.deserializeEventGridEvents(body);
      const validation = events.find((e) => isSystemEvent("Microsoft.EventGrid.SubscriptionValidationEvent", e));
      if (validation) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ validationResponse: validation.data.validationCode }));
        return;
      }
      received.push({ headers: req.headers, events });
      res.writeHead(200);
      res.end();
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, received, url: `http://127.0.0.1:${server.address().port}/api/updates` })));
}

async function until(check, what, ms = OP_MS) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

lapisTest("published events reach a validated webhook with the service's headers", async () => {
  const hook = await webhook();
  try {
    const made = await admin("PUT", "topics/tracks/subscriptions/notify", {
      destination: { endpointType: "WebHook", properties: { endpointUrl: hook.url, maxEventsPerBatch: 10 } },
      filter: { includedEventTypes: ["MusicShare.TrackUploaded"] },
    });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    const client = new EventGridPublisherClient(`http://127.0.0.1:${httpPort}/topics/tracks/api/events`, "EventGrid", new AzureKeyCredential(KEY1), INSECURE);
    await within(client.send([
      { eventType: "MusicShare.TrackUploaded", subject: "tracks/1", dataVersion: "1.0", data: { track: 1 } },
      { eventType: "MusicShare.TrackPlayed", subject: "tracks/1", dataVersion: "1.0", data: { track: 1 } },
      { eventType: "MusicShare.TrackUploaded", subject: "tracks/2", dataVersion: "1.0", data: { track: 2 } },
    ]), OP_MS, "publishing");
    await until(() => hook.received.flatMap((r) => r.events).length >= 2, "two deliveries");
    const events = hook.received.flatMap((r) => r.events);
    assert.deepEqual(events.map((e) => e.data.track).sort(), [1, 2], "the filter kept the uploads only");
    assert.ok(events[0].eventTime instanceof Date, "the deserializer read the delivered event");
    const headers = hook.received[0].headers;
    assert.equal(headers["aeg-event-type"], "Notification");
    assert.equal(headers["aeg-subscription-name"], "NOTIFY");
    assert.equal(headers["aeg-delivery-count"], "0");
  } finally {
    hook.server.close();
  }
});

lapisTest("a namespace queue subscription with EventGridSenderClient and EventGridReceiverClient", async () => {
  const made = await admin("PUT", "topics/likes/subscriptions/counter", { destination: { endpointType: "Queue", properties: {} } });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const endpoint = `http://127.0.0.1:${httpPort}`;
  const sender = new EventGridSenderClient(endpoint, new AzureKeyCredential(KEY2), "likes", INSECURE);
  const receiver = new EventGridReceiverClient(endpoint, new AzureKeyCredential(KEY1), "likes", "counter", INSECURE);
  await within(sender.sendEvents({ type: "MusicShare.TrackLiked", source: "/music-share", data: { track: 1 } }), OP_MS, "sending one event");
  await within(sender.sendEvents([2, 3].map((track) => ({ type: "MusicShare.TrackLiked", source: "/music-share", data: { track } }))), OP_MS, "sending a batch");
  const first = await within(receiver.receiveEvents({ maxEvents: 10, maxWaitTime: 10 }), OP_MS, "receiving");
  assert.deepEqual(first.details.map((d) => d.event.data.track).sort(), [1, 2, 3]);
  assert.ok(first.details.every((d) => d.brokerProperties.deliveryCount === 1));
  const token = (track) => first.details.find((d) => d.event.data.track === track).brokerProperties.lockToken;

  const acked = await receiver.acknowledgeEvents([token(1)]);
  assert.deepEqual(acked.succeededLockTokens, [token(1)]);
  assert.deepEqual(acked.failedLockTokens, []);
  const again = await receiver.acknowledgeEvents([token(1)]);
  assert.equal(again.failedLockTokens[0].error.code, "TokenLost");
  assert.deepEqual((await receiver.renewEventLocks([token(2)])).succeededLockTokens, [token(2)]);
  assert.deepEqual((await receiver.rejectEvents([token(3)])).succeededLockTokens, [token(3)]);
  assert.deepEqual((await receiver.releaseEvents([token(2)])).succeededLockTokens, [token(2)]);
  const second = await within(receiver.receiveEvents({ maxEvents: 10, maxWaitTime: 10 }), OP_MS, "receiving again");
  assert.deepEqual(second.details.map((d) => [d.event.data.track, d.brokerProperties.deliveryCount]), [[2, 2]], "released comes back; rejected does not");
  await receiver.acknowledgeEvents(second.details.map((d) => d.brokerProperties.lockToken));
});
