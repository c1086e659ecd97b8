// What the API and website are built from: the same parts for `npm start`, `npm run api` and tests.
import type { Client } from '@temporalio/client';
import type { Config } from '../src/config.js';
import type { Sql } from '../src/db/pool.js';
import type { ShardRouter } from '../src/db/sharding/router.js';
import type { Logger } from '../src/log.js';

export interface ApiDeps {
  config: Config;
  catalog: Sql;
  router: ShardRouter;
  temporal: Client;
  log: Logger;
}
