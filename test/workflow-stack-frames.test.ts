// WORKER_WORKFLOW_STACK_FRAMES reaches workflow code: the worker's bundle sets V8's stack depth in
// the workflow sandbox (shared by every workflow of a worker thread), which the SDK's stack of
// every promise a workflow makes then records. Run on a real worker, as the worker runs it.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withWorkflowStackFrames } from '../src/worker-runtime.js';

const WORKFLOWS = fileURLToPath(new URL('./fixtures/stack-frames/workflows.ts', import.meta.url));
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never;

describe('workflow stack frames', () => {
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
