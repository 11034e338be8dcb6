// What the Event Grid JS tests share: the topic keys they declare in the config file,
// the client option plain http needs, and a server with those topics.

import { useLapis } from "./lapis_server.mjs";

export const KEY1 = "a2V5IG9uZSBmb3IgdGhlIGpz";
export const KEY2 = "a2V5IHR3byBmb3IgdGhlIGpz";
/** The JS clients refuse plain http unless told. */
export const INSECURE = { allowInsecureConnection: true };

/** Starts Lapis for the importing file with `topics` ({Name, ...}) declared, each with KEY1 and KEY2. */
export function useTopics(topics) {
  useLapis({ EventGrid: { Topics: topics.map((t) => ({ ...t, Key1: KEY1, Key2: KEY2 })) } });
}
