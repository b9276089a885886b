// Scenarios for the official TypeScript SDK (npm absurd-sdk), run by test_typescript_sdk.py.
// Usage: node scenarios.cjs <node_modules dir>, with the database in the standard PG*
// environment variables (which node-postgres reads). Prints one JSON object: what the
// SDK observed. Time is faked on both sides, as upstream's own SDK tests do: the database
// session follows absurd.fake_now, and Date.now follows the same instant.
"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

const modules = process.argv[2];
const load = createRequire(path.join(modules, "noop.js"));
const pg = load("pg");
const { Absurd, TimeoutError } = load("absurd-sdk");

const QUEUE = "ts_interop";
let now = Date.parse("2031-03-04T12:00:00Z");
Date.now = () => now;

async function main() {
  const client = new pg.Client();
  await client.connect();
  const setClock = () =>
    client.query("SELECT set_config('absurd.fake_now', $1, false)", [new Date(now).toISOString()]);
  const advance = async (seconds) => {
    now += seconds * 1000;
    await setClock();
  };
  await setClock();

  const pool = new pg.Pool({ max: 1 });
  const quiet = { log() {}, info() {}, warn() {}, error() {} };
  const app = new Absurd({ db: pool, queueName: QUEUE, log: quiet }).bindToConnection(client);
  await app.createQueue();
  const work = async (rounds = 1) => {
    for (let i = 0; i < rounds; i++) await app.workBatch("ts-worker", 60, 10);
  };
  const q = (text, params = []) => client.query(text, params).then((r) => r.rows);
  const table = (prefix) => `absurd."${prefix}_${QUEUE}"`;
  const result = async (id) => {
    const snapshot = await app.fetchTaskResult(id);
    return snapshot && { state: snapshot.state, result: snapshot.result ?? null };
  };
  const waits = async (id) =>
    (await q(`SELECT count(*)::int AS n FROM ${table("w")} WHERE task_id = $1`, [id]))[0].n;
  const checkpoints = async (id) =>
    (await q(`SELECT checkpoint_name FROM ${table("c")} WHERE task_id = $1 ORDER BY 1`, [id])).map(
      (r) => r.checkpoint_name,
    );
  const state = async (id) =>
    (await q(`SELECT state FROM ${table("t")} WHERE task_id = $1`, [id]))[0].state;
  const seen = [];
  const out = {};

  app.registerTask({ name: "steps" }, async (params, ctx) => {
    const a = await ctx.step("add", async () => params.x + 1);
    const b = await ctx.step("add", async () => a * 10);
    return { a, b, headers: ctx.headers };
  });
  app.registerTask({ name: "napper" }, async (params, ctx) => {
    await ctx.sleepFor("nap", 3600);
    return "rested";
  });
  app.registerTask({ name: "waiter" }, async (params, ctx) => ctx.awaitEvent("approved"));
  app.registerTask({ name: "impatient" }, async (params, ctx) => {
    try {
      return { payload: await ctx.awaitEvent("never", { timeout: 10 }) };
    } catch (err) {
      if (err instanceof TimeoutError) return { timed_out: true };
      throw err;
    }
  });
  app.registerTask({ name: "replayer" }, async (params, ctx) => {
    seen.push("start");
    let outcome;
    try {
      await ctx.awaitEvent("nothing", { timeout: 10 });
      outcome = "payload";
    } catch (err) {
      if (!(err instanceof TimeoutError)) throw err;
      outcome = "timeout";
    }
    seen.push(outcome);
    if (seen.filter((s) => s === "timeout").length === 1) throw new Error("fails after the timeout");
    return outcome;
  });
  app.registerTask({ name: "twice" }, async (params, ctx) => {
    let first;
    try {
      first = await ctx.awaitEvent("tick", { timeout: 10 });
    } catch (err) {
      if (!(err instanceof TimeoutError)) throw err;
      first = "timeout";
    }
    const second = await ctx.awaitEvent("tick", { timeout: 10 });
    return { first, second: second ?? null };
  });
  let healthy = false;
  app.registerTask({ name: "broken" }, async () => {
    if (!healthy) throw new Error("not yet");
    return "fixed";
  });

  // Steps, headers and idempotency.
  const steps = await app.spawn("steps", { x: 1 }, { headers: { trace: "t-1" }, idempotencyKey: "k" });
  const same = await app.spawn("steps", { x: 5 }, { idempotencyKey: "k" });
  out.idempotent = same.taskID === steps.taskID;
  await work();
  out.steps = { ...(await result(steps.taskID)), checkpoints: await checkpoints(steps.taskID) };

  // A sleep.
  const nap = await app.spawn("napper", {});
  await work();
  out.nap_while_sleeping = await state(nap.taskID);
  await advance(3600);
  await work();
  out.nap = await result(nap.taskID);

  // An event wait woken by an emit.
  const waiter = await app.spawn("waiter", {});
  await work();
  out.waiter_waits = await waits(waiter.taskID);
  await app.emitEvent("approved", { by: "ops" });
  await work();
  out.waiter = await result(waiter.taskID);

  // An event wait that times out, one that replays its timeout, and a second await of an
  // event after it timed out.
  const impatient = await app.spawn("impatient", {});
  const replayer = await app.spawn("replayer", {}, { maxAttempts: 2 });
  const twice = await app.spawn("twice", {});
  await work();
  await advance(10);
  await work(); // impatient and twice finish; replayer fails after its timeout
  await work(); // replayer's second attempt waits again
  out.replayer_waiting = { state: await state(replayer.taskID), waits: await waits(replayer.taskID) };
  await advance(10);
  await work();
  out.impatient = { ...(await result(impatient.taskID)), waits: await waits(impatient.taskID) };
  out.replayer = { ...(await result(replayer.taskID)), seen, checkpoints: await checkpoints(replayer.taskID) };
  out.twice = { ...(await result(twice.taskID)), waits: await waits(twice.taskID) };

  // Failure, exhaustion and retry_task; cancellation.
  const broken = await app.spawn("broken", {}, { maxAttempts: 2 });
  await work(3);
  out.broken_failed = (await result(broken.taskID)).state;
  healthy = true;
  const revived = await app.retryTask(broken.taskID, { maxAttempts: 3 });
  out.revived_attempt = revived.attempt;
  await work();
  out.broken = await result(broken.taskID);
  const doomed = await app.spawn("napper", {});
  await app.cancelTask(doomed.taskID);
  await work();
  out.cancelled = await result(doomed.taskID);

  out.waits_left = (await q(`SELECT count(*)::int AS n FROM ${table("w")}`))[0].n;
  await client.end();
  await pool.end();
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
