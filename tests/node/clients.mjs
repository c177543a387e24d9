// Asks one question with the official openai and @anthropic-ai/sdk Node SDKs and prints,
// per SDK, one JSON line: {"sdk", "text", "x_replay"}. Driven by tests/e2e/test_node.py.
//
// node clients.mjs proxy    HTTPS_PROXY and NODE_EXTRA_CA_CERTS from the environment;
//                           Node's fetch ignores HTTPS_PROXY, undici's EnvHttpProxyAgent
//                           reads it (and NO_PROXY) once set as the global dispatcher.
// node clients.mjs reverse  OPENAI_BASE_URL and ANTHROPIC_BASE_URL point at reverse proxies.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";

const how = process.argv[2];
if (how === "proxy") {
  setGlobalDispatcher(new EnvHttpProxyAgent());
} else if (how !== "reverse") {
  throw new Error(`usage: node clients.mjs proxy|reverse, not ${how}`);
}
const question = process.env.QUESTION ?? "What is a cassette?";

const openai = new OpenAI({ apiKey: "sk-test-node-0000000000000000000000", maxRetries: 0 });
const chat = await openai.chat.completions
  .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: question }] })
  .withResponse();
console.log(JSON.stringify({
  sdk: "openai",
  text: chat.data.choices[0].message.content,
  x_replay: chat.response.headers.get("x-replay"),
}));

const anthropic = new Anthropic({ apiKey: "sk-ant-test-node-00000000000000000", maxRetries: 0 });
const message = await anthropic.messages
  .create({ model: "claude-haiku-4-5", max_tokens: 64, messages: [{ role: "user", content: question }] })
  .withResponse();
console.log(JSON.stringify({
  sdk: "anthropic",
  text: message.data.content[0].text,
  x_replay: message.response.headers.get("x-replay"),
}));
