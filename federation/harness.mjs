#!/usr/bin/env node
// A real Apollo Federation gateway over the running billing subgraph and the people subgraph.
//
//   node federation/harness.mjs --billing-url http://127.0.0.1:<port>/graphql --people people.json
//
// 1. starts the people subgraph (people-subgraph.mjs) on a free port;
// 2. fetches billing's SDL from `{ _service { sdl } }` at --billing-url, so the subgraph that
//    is running is the one composed;
// 3. composes both, billing's SDL as served, with Apollo's and The Guild's composers
//    (compose.mjs; either failing is fatal);
// 4. serves an @apollo/gateway (ApolloGateway with that supergraph SDL) in @apollo/server on a
//    free port, forwarding each client's Authorization header to billing;
// 5. prints ONE line of JSON to stdout: {"gateway": "http://127.0.0.1:<p>/", "people": "..."}.
// It stays up until its stdin closes or it gets SIGTERM/SIGINT, then exits 0. Logs go to stderr.
//
// Every response carries `extensions.subgraphRequests`: [{subgraph, query, variables}], the
// requests the gateway sent to the subgraphs for it, in order, so tests can see the query plan.
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

import { composeBoth, report } from './compose.mjs';
import { PEOPLE_SDL, readPeople, startPeopleSubgraph } from './people-subgraph.mjs';

const log = (...args) => console.error('[federation-harness]', ...args);

// Everything Apollo logs goes to stderr: stdout carries exactly one line, the URLs.
const logger = {
  debug: () => {},
  info: (message) => log(message),
  warn: (message) => log('warn:', message),
  error: (message) => log('error:', message),
};

function parseArguments(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (!value) throw new Error(`${name} needs a value`);
    if (name === '--billing-url') options.billingUrl = value;
    else if (name === '--people') options.peopleFile = value;
    else throw new Error(`unknown argument ${name}`);
  }
  if (!options.billingUrl || !options.peopleFile) {
    throw new Error('usage: node harness.mjs --billing-url <http://host:port/graphql> --people <people.json>');
  }
  return options;
}

async function fetchBillingSdl(billingUrl) {
  let response;
  let text;
  try {
    response = await fetch(billingUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: '{ _service { sdl } }' }),
      signal: AbortSignal.timeout(30_000),
    });
    text = await response.text();
  } catch (error) {
    throw new Error(`could not fetch billing's SDL from ${billingUrl}: ${error.message} (${error.cause?.code ?? error.cause ?? 'no cause'})`);
  }
  let payload;
  try {
    payload = JSON.parse(text);
  } catch {
    throw new Error(`billing at ${billingUrl} answered ${response.status} with non-JSON: ${text.slice(0, 500)}`);
  }
  const sdl = payload?.data?._service?.sdl;
  if (!response.ok || payload.errors || typeof sdl !== 'string') {
    throw new Error(`billing at ${billingUrl} did not give its SDL (${response.status}): ${text.slice(0, 2000)}`);
  }
  return sdl;
}

/** Forwards the client's Authorization header to billing; records every subgraph request. */
class RecordingDataSource extends RemoteGraphQLDataSource {
  constructor({ name, url, forwardAuthorization }) {
    super({ url });
    this.subgraphName = name;
    this.forwardAuthorization = forwardAuthorization;
  }

  willSendRequest({ request, context }) {
    if (this.forwardAuthorization && context?.authorization) {
      request.http.headers.set('authorization', context.authorization);
    }
    context?.subgraphRequests?.push({
      subgraph: this.subgraphName,
      query: request.query,
      variables: request.variables ?? null,
    });
  }
}

const subgraphRequestsPlugin = {
  async requestDidStart() {
    return {
      async willSendResponse({ response, contextValue }) {
        if (response.body.kind !== 'single') return;
        const result = response.body.singleResult;
        result.extensions = { ...result.extensions, subgraphRequests: contextValue.subgraphRequests ?? [] };
      },
    };
  },
};

async function main() {
  const { billingUrl, peopleFile } = parseArguments(process.argv.slice(2));
  const stops = [];
  let stopping = false;
  const shutdown = async (why) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (error) {
        log('error while stopping:', error);
      }
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();

  const people = await startPeopleSubgraph({ data: readPeople(peopleFile) });
  stops.push(people.stop);
  log(`people subgraph at ${people.url}`);

  // Billing's SDL exactly as served, never an edited copy. ApolloGateway (unlike Apollo Router
  // and Hive Gateway) refuses a supergraph that links a SECURITY feature such as
  // @authenticated, which billing prints only with GATEWAY_FEDERATION_AUTH_DIRECTIVES=true:
  // with that setting on, this gateway fails to start, saying so.
  const billingSdl = await fetchBillingSdl(billingUrl);
  const { ok, supergraphSdl, results } = composeBoth([
    { name: 'billing', url: billingUrl, sdl: billingSdl },
    { name: 'people', url: people.url, sdl: PEOPLE_SDL },
  ]);
  if (!ok) throw new Error(`the subgraphs do not compose:\n${report(results)}`);
  log(`composed:\n${report(results)}`);

  const gateway = new ApolloGateway({
    supergraphSdl,
    logger,
    buildService: ({ name, url }) =>
      new RecordingDataSource({ name, url, forwardAuthorization: name === 'billing' }),
  });
  const server = new ApolloServer({ gateway, logger, plugins: [subgraphRequestsPlugin] });
  const { url } = await startStandaloneServer(server, {
    listen: { host: '127.0.0.1', port: 0 },
    context: async ({ req }) => ({ authorization: req.headers.authorization, subgraphRequests: [] }),
  });
  stops.push(() => server.stop());
  log(`gateway at ${url}`);
  process.stdout.write(`${JSON.stringify({ gateway: url, people: people.url })}\n`);
}

main().catch((error) => {
  log('failed:', error?.stack ?? error);
  process.exit(1);
});
