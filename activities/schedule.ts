// recordSchedule: what the workflow decided after a sync (state, interval and why, failures in a
// row), written to the catalog so that lists show it without asking every workflow. Run as a
// local activity: cheap, and idempotent (the same values written again change nothing).
import { saveSchedule, type Schedule } from '../src/db/communities.js';
import type { Sql } from '../src/db/pool.js';

export interface ScheduleInput extends Schedule {
  ref: string;
}

export function createScheduleActivity(deps: { catalog: Sql }) {
  return async function recordSchedule(input: ScheduleInput): Promise<void> {
    const { ref, ...schedule } = input;
    await saveSchedule(deps.catalog, ref, schedule);
  };
}
