// Event Grid publishing with the official JavaScript SDK (@azure/eventgrid, pinned in
// package.json) against a real Lapis binary: topics declared in the config file with
// their keys, EventGridPublisherClient for each schema with a key or a SAS token, and
// what the client sees for a wrong key, an expired token and an unknown topic.
//
//   cd tests/compat/js && npm ci && node --test eventgrid.test.mjs
//
// The JS client refuses plain http unless allowInsecureConnection is set.

import assert from "node:assert/strict";
import { AzureKeyCredential, AzureSASCredential, EventGridPublisherClient, generateSharedAccessSignature } from "@azure/eventgrid";
import { INSECURE, KEY1, KEY2, useTopics } from "./eventgrid_support.mjs";
import { httpPort, lapisTest, rejection, within } from "./lapis_server.mjs";

const OP_MS = 8_000;

useTopics([
  { Name: "uploads", InputSchema: "EventGridSchema" },
  { Name: "plays", InputSchema: "CloudEventSchemaV1_0" },
]);

const endpoint = (topic) => `http://127.0.0.1:${httpPort}/topics/${topic}/api/events`;

lapisTest("Event Grid events and CloudEvents are accepted with either key", async () => {
  const grid = new EventGridPublisherClient(endpoint("uploads"), "EventGrid", new AzureKeyCredential(KEY1), INSECURE);
  await within(grid.send([
    { eventType: "MusicShare.TrackUploaded", subject: "tracks/1", dataVersion: "1.0", data: { track: 1 } },
    { eventType: "MusicShare.TrackUploaded", subject: "tracks/2", dataVersion: "1.0", data: { track: 2 } },
  ]), OP_MS, "sending Event Grid events");
  const cloud = new EventGridPublisherClient(endpoint("plays"), "CloudEvent", new AzureKeyCredential(KEY2), INSECURE);
  await within(cloud.send([{ type: "MusicShare.TrackPlayed", source: "/music-share", data: { track: 1 } }]), OP_MS, "sending a CloudEvent");
});

lapisTest("a SAS token from generateSharedAccessSignature works until it expires", async () => {
  const later = new Date(Date.now() + 3_600_000);
  const token = await generateSharedAccessSignature(endpoint("uploads"), new AzureKeyCredential(KEY1), later);
  const client = new EventGridPublisherClient(endpoint("uploads"), "EventGrid", new AzureSASCredential(token), INSECURE);
  await within(client.send([{ eventType: "T", subject: "s", dataVersion: "1", data: {} }]), OP_MS, "sending with a token");
  const earlier = new Date(Date.now() - 60_000);
  const expired = await generateSharedAccessSignature(endpoint("uploads"), new AzureKeyCredential(KEY1), earlier);
  const stale = new EventGridPublisherClient(endpoint("uploads"), "EventGrid", new AzureSASCredential(expired), INSECURE);
  const e = await rejection(stale.send([{ eventType: "T", subject: "s", dataVersion: "1", data: {} }]), OP_MS, "an expired token");
  assert.equal(e.statusCode, 401, String(e));
  assert.match(e.message, /expired/);
});

lapisTest("a wrong key is 401 and an unknown topic 404, with the service's error codes", async () => {
  const wrong = new EventGridPublisherClient(endpoint("uploads"), "EventGrid", new AzureKeyCredential("bm90IHRoZSBrZXk="), INSECURE);
  const e = await rejection(wrong.send([{ eventType: "T", subject: "s", dataVersion: "1", data: {} }]), OP_MS, "a wrong key");
  assert.equal(e.statusCode, 401, String(e));
  assert.equal(e.code, "Unauthorized");
  const nowhere = new EventGridPublisherClient(endpoint("no-such-topic"), "EventGrid", new AzureKeyCredential(KEY1), INSECURE);
  const n = await rejection(nowhere.send([{ eventType: "T", subject: "s", dataVersion: "1", data: {} }]), OP_MS, "an unknown topic");
  assert.equal(n.statusCode, 404, String(n));
  assert.equal(n.code, "NotFound");
});
