// Adapts the Temporal SDK's logger interface to pino. The SDK adds workflowId, runId and
// activity details to the metadata of workflow and activity log lines, so they show up here.
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import type { Logger } from '../log.js';

const LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

export function temporalLogger(log: Logger): TemporalLogger {
  const write = (level: LogLevel, message: string, meta?: LogMetadata) => {
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(meta ?? {})) {
      // Drop noisy SDK fields; keep ids that tie a line to a run.
      if (
        k === 'sdkComponent' ||
        k === 'taskQueue' ||
        k === 'namespace' ||
        k === 'workflowType' ||
        (k === 'activityType' && !meta?.activityId)
      )
        continue;
      fields[k] = v;
    }
    log[LEVEL[level]](fields, message);
  };
  return {
    log: write,
    trace: (m, meta) => write('TRACE', m, meta),
    debug: (m, meta) => write('DEBUG', m, meta),
    info: (m, meta) => write('INFO', m, meta),
    warn: (m, meta) => write('WARN', m, meta),
    error: (m, meta) => write('ERROR', m, meta),
  };
}
