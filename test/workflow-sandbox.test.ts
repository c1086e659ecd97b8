// The workflow sandbox as the worker sets it up, on a real worker:
//  - WORKER_WORKFLOW_STACK_FRAMES reaches workflow code: the worker's bundle sets V8's stack depth
//    in the sandbox (shared by every workflow of a worker thread), which the SDK's stack of every
//    promise a workflow makes then records;
//  - WORKER_WORKFLOW_THREAD=main runs workflow code on the worker's main thread and keeps the SDK's
//    guard against workflow code that never yields: a spinning workflow's task fails after 5 s and
//    the worker goes on serving other workflows.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withWorkflowStackFrames, workflowThreadOptions } from '../src/worker-runtime.js';
import { eventually } from './support/stack.js';

const WORKFLOWS = fileURLToPath(new URL('./fixtures/sandbox/workflows.ts', import.meta.url));
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never;

let connection: Connection;
let client: Client;
let code: string;

beforeAll(async () => {
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection });
  ({ code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS, logger: silent }));
});
afterAll(async () => {
  await connection?.close();
});

describe('workflow stack frames', () => {
  async function limitSeenBy(bundle: { code: string }): Promise<number> {
    const taskQueue = `stack-frames-${randomUUID()}`;
    const native = await NativeConnection.connect({ address: inject('temporalAddress') });
    try {
      const worker = await Worker.create({ connection: native, taskQueue, workflowBundle: bundle });
      return await worker.runUntil(client.workflow.execute('stackFrames', { taskQueue, workflowId: taskQueue }));
    } finally {
      await native.close();
    }
  }

  it("are V8's 10 in a plain bundle, and what the worker sets in its own", async () => {
    expect(await limitSeenBy({ code })).toBe(10);
    expect(await limitSeenBy(withWorkflowStackFrames({ code }, 3))).toBe(3);
  });
});

describe('workflows on the main thread', () => {
  it('fail a task that never yields, and go on serving the others', async () => {
    const taskQueue = `workflow-thread-${randomUUID()}`;
    const native = await NativeConnection.connect({ address: inject('temporalAddress') });
    try {
      const worker = await Worker.create({
        connection: native,
        taskQueue,
        workflowBundle: { code },
        ...workflowThreadOptions('main'),
      });
      // In the SDK's in-thread VM, with its guard (debug mode alone would give it 2^32 ms).
      expect(worker.options.debugMode).toBe(true);
      expect(worker.options.isolateExecutionTimeoutMs).toBe(5000);
      await worker.runUntil(async () => {
        // The main thread is the one running this test: the workflow runs and answers here.
        expect(await client.workflow.execute('stackFrames', { taskQueue, workflowId: `${taskQueue}-a` })).toBe(10);
        const spinning = await client.workflow.start('spins', { taskQueue, workflowId: `${taskQueue}-spin` });
        const failure = await eventually(async () => {
          const { events } = await spinning.fetchHistory();
          return events?.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
        }, 30_000);
        expect(failure?.failure?.message).toMatch(/deadlock|timed out/i);
        // The worker is still there for everyone else.
        expect(await client.workflow.execute('stackFrames', { taskQueue, workflowId: `${taskQueue}-b` })).toBe(10);
        await spinning.terminate('test over');
      });
    } finally {
      await native.close();
    }
  }, 60_000);

  it('are off by default: the SDK runs workflows in a thread of its own', () => {
    expect(workflowThreadOptions('own')).toEqual({});
  });
});
