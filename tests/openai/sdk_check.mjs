// The official `openai` npm SDK (package.json pins it) against an OpenAI-compatible base URL:
// TestBackend directly (tests/e2e/openai_backend_test.cc) or rma-gateway in front of it. Runs
// each check below with the SDK and prints one JSON object per line on stdout, for a test to
// parse; exits 0 only when every check passed (1 when one failed, 2 on bad arguments).
//
//   node sdk_check.mjs BASE_URL [API_KEY] [--model ID] [--tokens N] [--missing-model ID]
//                      [--token-delay-ms N] [--checks a,b,...] [--any-text] [--timeout-ms N]
//
// BASE_URL ends in /v1 (e.g. http://127.0.0.1:8080/v1). API_KEY defaults to $OPENAI_API_KEY or
// "rma-test-key". --model (default test-model) is the model every call names and models.list()
// must list; --tokens (default 8) is the max_tokens sent and the number of tokens expected back;
// unless --any-text, the text must be TestBackend's "tok0 tok1 ... tok{N-1}". --missing-model
// (default missing-model) must answer 404 model_not_found. --token-delay-ms sends the header
// X-Test-Token-Delay-Ms (TestBackend's pause before each token) with every completion. The SDK
// neither retries nor waits longer than --timeout-ms (default 60000) per call.
//
// Checks, in this order (--checks picks some): models_list, chat, chat_stream, chat_stream_abort,
// completion, completion_stream, embeddings, error. Output lines:
//   {"chunk":"chat_stream","i":0,"ms":12.5,"mono_ms":123456.7,"delta":"tok0"}  per streamed chunk
//       that carries text (also "completion_stream"); ms counts from just before the create()
//       call, mono_ms is CLOCK_MONOTONIC (process.hrtime, the clock of C++'s steady_clock)
//   {"check":"chat_stream","ok":true,"chunks":8,"first_chunk_ms":..,"last_chunk_ms":..,
//       "first_chunk_mono_ms":..,"last_chunk_mono_ms":..,"text":"...",...}  per check; a failed
//       check has "ok":false and "error" saying why
//   {"done":true,"ok":true,"passed":8,"failed":[]}  last
// chat_stream_abort asks for 1000 tokens, reads the first chunk and aborts the request (the SDK
// closes the connection), so the server side can check that it noticed.
import { parseArgs } from 'node:util';

import OpenAI from 'openai';

const kChecks = [
  'models_list',
  'chat',
  'chat_stream',
  'chat_stream_abort',
  'completion',
  'completion_stream',
  'embeddings',
  'error',
];

function usage(message) {
  process.stderr.write(
    `sdk_check: ${message}\nusage: node sdk_check.mjs BASE_URL [API_KEY] [--model ID] [--tokens N] ` +
      '[--missing-model ID] [--token-delay-ms N] [--checks a,b,...] [--any-text] [--timeout-ms N]\n',
  );
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string', default: 'test-model' },
      tokens: { type: 'string', default: '8' },
      'missing-model': { type: 'string', default: 'missing-model' },
      'token-delay-ms': { type: 'string' },
      checks: { type: 'string', default: kChecks.join(',') },
      'any-text': { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '60000' },
    },
  });
} catch (e) {
  usage(e.message);
}
const { values, positionals } = parsed;
if (positionals.length < 1 || positionals.length > 2) usage('expected BASE_URL [API_KEY]');
const baseURL = positionals[0];
const apiKey = positionals[1] ?? process.env.OPENAI_API_KEY ?? 'rma-test-key';
const model = values.model;
const tokens = Number(values.tokens);
const timeout = Number(values['timeout-ms']);
if (!Number.isInteger(tokens) || tokens < 1) usage('--tokens must be a positive integer');
if (!Number.isInteger(timeout) || timeout < 1) usage('--timeout-ms must be a positive integer');
const selected = values.checks.split(',').filter((c) => c !== '');
for (const c of selected) if (!kChecks.includes(c)) usage(`unknown check ${c}`);
const kAbortTokens = 1000;
const expectedText = Array.from({ length: tokens }, (_, i) => `tok${i}`).join(' ');
const requestOptions = {};
if (values['token-delay-ms'] !== undefined) {
  requestOptions.headers = { 'X-Test-Token-Delay-Ms': values['token-delay-ms'] };
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout });

const now = () => performance.now();
const monoMs = () => Number(process.hrtime.bigint()) / 1e6;
const round = (ms) => Math.round(ms * 1000) / 1000;
const print = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

// Collects what a check found wrong; the check passes when nothing was.
class Expect {
  constructor() {
    this.problems = [];
  }
  eq(what, actual, expected) {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      this.problems.push(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
    }
  }
  true(what, condition) {
    if (!condition) this.problems.push(what);
  }
}

function checkText(expect, what, text) {
  if (values['any-text']) {
    expect.true(`${what} is empty`, typeof text === 'string' && text.length > 0);
  } else {
    expect.eq(what, text, expectedText);
  }
}

function checkUsage(expect, usage) {
  expect.true('usage is missing', usage !== undefined && usage !== null);
  if (!usage) return;
  expect.eq('usage.completion_tokens', usage.completion_tokens, tokens);
  expect.eq('usage.total_tokens', usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

// Reads a stream of chunks, printing one line per chunk with text; `text(chunk)` picks the text.
async function readStream(name, stream, t0, text, stopAfter = Infinity) {
  const r = { chunks: 0, events: 0, text: '', times: [], monos: [], finish: null, usage: null };
  r.models = new Set();
  r.objects = new Set();
  for await (const chunk of stream) {
    const ms = now() - t0;
    const mono = monoMs();
    r.events += 1;
    r.models.add(chunk.model);
    r.objects.add(chunk.object);
    if (chunk.usage) r.usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (choice?.finish_reason) r.finish = choice.finish_reason;
    const delta = choice ? text(choice) : undefined;
    if (typeof delta === 'string' && delta !== '') {
      print({ chunk: name, i: r.chunks, ms: round(ms), mono_ms: round(mono), delta });
      r.chunks += 1;
      r.text += delta;
      r.times.push(ms);
      r.monos.push(mono);
      if (r.chunks >= stopAfter) break;
    }
  }
  return r;
}

function streamSummary(r) {
  return {
    chunks: r.chunks,
    events: r.events,
    first_chunk_ms: r.chunks ? round(r.times[0]) : null,
    last_chunk_ms: r.chunks ? round(r.times[r.chunks - 1]) : null,
    first_chunk_mono_ms: r.chunks ? round(r.monos[0]) : null,
    last_chunk_mono_ms: r.chunks ? round(r.monos[r.chunks - 1]) : null,
    text: r.text,
    finish_reason: r.finish,
    usage: r.usage,
  };
}

function checkStream(expect, r, object) {
  expect.eq('chunks with text', r.chunks, tokens);
  checkText(expect, 'streamed text', r.text);
  expect.eq('finish_reason', r.finish, 'stop');
  expect.eq('chunk objects', [...r.objects], [object]);
  expect.eq('chunk models', [...r.models], [model]);
  checkUsage(expect, r.usage);
  for (let i = 1; i < r.times.length; ++i) {
    expect.true('chunk arrival times go backwards', r.times[i] >= r.times[i - 1]);
  }
}

const prompt = 'Say something deterministic.';
const messages = [{ role: 'user', content: prompt }];

const checks = {
  async models_list(expect) {
    const ids = [];
    for await (const m of client.models.list()) {
      expect.eq(`models[${ids.length}].object`, m.object, 'model');
      expect.true(`models[${ids.length}] has no owned_by`, typeof m.owned_by === 'string');
      expect.true(`models[${ids.length}] has no created`, Number.isInteger(m.created));
      ids.push(m.id);
    }
    expect.true(`${model} is not listed`, ids.includes(model));
    return { models: ids };
  },

  async chat(expect) {
    const c = await client.chat.completions.create(
      { model, messages, max_tokens: tokens },
      requestOptions,
    );
    expect.eq('object', c.object, 'chat.completion');
    expect.eq('model', c.model, model);
    expect.eq('choices', c.choices.length, 1);
    expect.eq('role', c.choices[0]?.message?.role, 'assistant');
    expect.eq('finish_reason', c.choices[0]?.finish_reason, 'stop');
    checkText(expect, 'text', c.choices[0]?.message?.content);
    checkUsage(expect, c.usage);
    return { text: c.choices[0]?.message?.content, usage: c.usage };
  },

  async chat_stream(expect) {
    const t0 = now();
    const stream = await client.chat.completions.create(
      { model, messages, max_tokens: tokens, stream: true, stream_options: { include_usage: true } },
      requestOptions,
    );
    const r = await readStream('chat_stream', stream, t0, (choice) => choice.delta?.content);
    checkStream(expect, r, 'chat.completion.chunk');
    return streamSummary(r);
  },

  // Asks for far more tokens than it reads, so that the server (given a token delay) is still
  // generating when the client goes away, however slowly this process runs.
  async chat_stream_abort(expect) {
    const t0 = now();
    const stream = await client.chat.completions.create(
      { model, messages, max_tokens: kAbortTokens, stream: true },
      requestOptions,
    );
    const r = await readStream('chat_stream_abort', stream, t0, (c) => c.delta?.content, 1);
    stream.controller.abort();
    expect.eq('chunks before the abort', r.chunks, 1);
    return { chunks: r.chunks, first_chunk_ms: r.chunks ? round(r.times[0]) : null };
  },

  async completion(expect) {
    const c = await client.completions.create(
      { model, prompt, max_tokens: tokens },
      requestOptions,
    );
    expect.eq('object', c.object, 'text_completion');
    expect.eq('model', c.model, model);
    expect.eq('choices', c.choices.length, 1);
    expect.eq('finish_reason', c.choices[0]?.finish_reason, 'stop');
    checkText(expect, 'text', c.choices[0]?.text);
    checkUsage(expect, c.usage);
    return { text: c.choices[0]?.text, usage: c.usage };
  },

  async completion_stream(expect) {
    const t0 = now();
    const stream = await client.completions.create(
      { model, prompt, max_tokens: tokens, stream: true, stream_options: { include_usage: true } },
      requestOptions,
    );
    const r = await readStream('completion_stream', stream, t0, (choice) => choice.text);
    checkStream(expect, r, 'text_completion');
    return streamSummary(r);
  },

  // The SDK asks for base64 unless told otherwise and decodes it; both forms must agree.
  async embeddings(expect) {
    const input = ['hello world', 'goodbye'];
    const b64 = await client.embeddings.create({ model, input });
    const floats = await client.embeddings.create({ model, input, encoding_format: 'float' });
    const one = await client.embeddings.create({ model, input: 'hello world' });
    for (const [what, e, n] of [['base64', b64, 2], ['float', floats, 2], ['single', one, 1]]) {
      expect.eq(`${what}: object`, e.object, 'list');
      expect.eq(`${what}: model`, e.model, model);
      expect.eq(`${what}: items`, e.data.length, n);
      e.data.forEach((d, i) => {
        expect.eq(`${what}: data[${i}].object`, d.object, 'embedding');
        expect.eq(`${what}: data[${i}].index`, d.index, i);
        expect.true(
          `${what}: data[${i}].embedding is not a non-empty array of finite numbers`,
          Array.isArray(d.embedding) &&
            d.embedding.length > 0 &&
            d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)),
        );
      });
      expect.true(`${what}: usage is missing`, Number.isInteger(e.usage?.prompt_tokens));
    }
    expect.eq('base64 and float embeddings', b64.data.map((d) => d.embedding),
      floats.data.map((d) => d.embedding));
    expect.eq('one input and the first of two', one.data[0]?.embedding, floats.data[0]?.embedding);
    return { count: b64.data.length, dims: b64.data[0]?.embedding.length, usage: b64.usage };
  },

  // An unknown model, without and with streaming: the SDK's NotFoundError, 404, model_not_found.
  async error(expect) {
    const result = {};
    for (const stream of [false, true]) {
      const what = stream ? 'stream' : 'plain';
      try {
        const r = await client.chat.completions.create(
          { model: values['missing-model'], messages, max_tokens: tokens, stream },
          requestOptions,
        );
        if (stream) for await (const _ of r) { /* drain */ }
        expect.true(`${what}: no error for model ${values['missing-model']}`, false);
      } catch (e) {
        expect.true(`${what}: ${e?.constructor?.name} is not NotFoundError: ${e?.message}`,
          e instanceof OpenAI.NotFoundError);
        expect.eq(`${what}: status`, e?.status, 404);
        expect.eq(`${what}: code`, e?.code, 'model_not_found');
        expect.eq(`${what}: type`, e?.type, 'invalid_request_error');
        result[what] = { error: e?.constructor?.name, status: e?.status, code: e?.code, message: e?.message };
      }
    }
    return result;
  },
};

const failed = [];
for (const name of kChecks.filter((c) => selected.includes(c))) {
  const expect = new Expect();
  let details = {};
  try {
    details = (await checks[name](expect)) ?? {};
  } catch (e) {
    expect.true(`threw ${e?.constructor?.name}: ${e?.message}`, false);
  }
  const ok = expect.problems.length === 0;
  if (!ok) failed.push(name);
  print({ check: name, ok, ...details, ...(ok ? {} : { error: expect.problems.join('; ') }) });
}
print({ done: true, ok: failed.length === 0, passed: selected.length - failed.length, failed });
process.exitCode = failed.length === 0 ? 0 : 1;
