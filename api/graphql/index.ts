// /graphql: GraphQL over HTTP (graphql-yoga) on the schema in schema.ts. POST with a JSON body
// (queries and mutations), GET ?query= (queries only; yoga refuses mutations over GET), and for a
// browser (Accept: text/html) the GraphiQL page, served offline (graphiql.ts). Operations deeper
// than GRAPHQL_MAX_DEPTH or costlier than GRAPHQL_MAX_COST are refused before they run
// (graphql-armor); introspection stays on. app.ts puts the host check, the body limit and the
// cross-site guard in front; mutations check the API token themselves (context.ts).
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import type { GraphQLError, ValidationContext } from 'graphql';
import { createGraphQLError, createYoga } from 'graphql-yoga';
import { Hono } from 'hono';
import type { Services } from '../service.js';
import { isJsonContentType, unsupportedMediaType } from '../validation.js';
import { createContext, type GraphQLContext } from './context.js';
import { maskError } from './errors.js';
import { graphiqlAssets, graphiqlPage, wantsGraphiql } from './graphiql.js';
import { schema } from './schema.js';

/** A refusal by a limit, as a validation error with a code (instead of the plugin's "Syntax Error: …"). */
const refuse = (code: string) => (ctx: ValidationContext | null, err: GraphQLError) =>
  ctx?.reportError(createGraphQLError(err.message.replace(/^Syntax Error: /, ''), { extensions: { code, status: 400 } }));

export function graphqlRoutes(s: Services): Hono {
  const { config, log } = s;
  const yoga = createYoga<GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: false,
    landingPage: false,
    batching: false,
    maskedErrors: { maskError: maskError(log) },
    // yoga logs each error it masks; ours are logged (or are the client's mistakes) in maskError.
    logging: {
      debug: (...args) => log.debug({ args }, 'graphql'),
      info: (...args) => log.debug({ args }, 'graphql'),
      warn: (...args) => log.warn({ args }, 'graphql'),
      error: (...args) => log.debug({ err: args[0] }, 'graphql error'),
    },
    plugins: [
      maxDepthPlugin({
        n: config.GRAPHQL_MAX_DEPTH,
        ignoreIntrospection: true,
        propagateOnRejection: false,
        onReject: [refuse('query_too_deep')],
      }),
      costLimitPlugin({
        maxCost: config.GRAPHQL_MAX_COST,
        // About one point per field the answer can hold: linear in what is asked, times `first`.
        objectCost: 1,
        scalarCost: 1,
        depthCostFactor: 1,
        ignoreIntrospection: true,
        propagateOnRejection: false,
        onReject: [refuse('query_too_complex')],
      }),
    ],
  });

  const app = new Hono();
  graphiqlAssets(app);
  app.on(['GET', 'POST'], '/', async (c) => {
    if (wantsGraphiql(c)) return graphiqlPage(c);
    // JSON only: a form post (urlencoded, multipart) is what a cross-site page can send without asking.
    if (c.req.method === 'POST' && !isJsonContentType(c.req.header('content-type'))) throw unsupportedMediaType();
    return yoga.fetch(c.req.raw, createContext(s, c.req.header('authorization')));
  });
  return app;
}
