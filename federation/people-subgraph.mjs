#!/usr/bin/env node
// The "people" (HR) subgraph: a second subgraph that owns a field of billing's `Seat` entity
// (`holder`), a way in to seats from elsewhere (`Query.team`), and the `Contract` entity's
// `name` (`Query.contracts`), so the gateway has to plan across both subgraphs in both directions.
//
//   node federation/people-subgraph.mjs --people <people.json> [--port <port>]
//
// people.json: {"customerId", "contractId", "contractName",
//               "people": [{"seatId", "name", "team"}, ...]}
// Prints one line of JSON, {"url": "http://127.0.0.1:<port>/"}, to stdout once it listens.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

const here = dirname(fileURLToPath(import.meta.url));

export const PEOPLE_SDL = readFileSync(join(here, 'people.graphql'), 'utf8');

/** The people data file, checked enough that a broken fixture fails loudly. */
export function readPeople(file) {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  for (const name of ['customerId', 'contractId', 'contractName']) {
    if (typeof data[name] !== 'string' || !data[name]) throw new Error(`${file}: "${name}" must be a non-empty string`);
  }
  if (!Array.isArray(data.people)) throw new Error(`${file}: "people" must be a list`);
  for (const person of data.people) {
    for (const name of ['seatId', 'name', 'team']) {
      if (typeof person[name] !== 'string' || !person[name]) {
        throw new Error(`${file}: every person needs a non-empty string "${name}"`);
      }
    }
  }
  return data;
}

export function resolvers(data) {
  const { customerId, contractId, contractName, people } = data;
  const bySeat = new Map(people.map((person) => [person.seatId, person]));
  const seat = (seatId) => ({ customerId, contractId, seatId });
  const holderOf = (ref) =>
    ref.customerId === customerId && ref.contractId === contractId ? bySeat.get(ref.seatId) ?? null : null;

  return {
    Query: {
      team: (_, { name }) => {
        const members = people.filter((person) => person.team === name);
        return members.length ? { name, seats: members.map((person) => seat(person.seatId)) } : null;
      },
      contracts: () => [{ id: contractId, customerId, name: contractName }],
    },
    Seat: {
      // Any seat billing (or anyone) names is a Seat here; its holder is null when unknown.
      __resolveReference: (ref) => ({
        customerId: ref.customerId,
        contractId: ref.contractId,
        seatId: ref.seatId,
      }),
      holder: (ref) => {
        const person = holderOf(ref);
        return person && { name: person.name, team: person.team };
      },
    },
    Contract: {
      __resolveReference: (ref) =>
        ref.id === contractId && ref.customerId === customerId
          ? { id: contractId, customerId, name: contractName }
          : null,
    },
  };
}

// Apollo Server logs with console.info (stdout) by default; stdout is for the URL line only.
const stderrLogger = {
  debug: () => {},
  info: (message) => console.error('[people]', message),
  warn: (message) => console.error('[people] warn:', message),
  error: (message) => console.error('[people] error:', message),
};

/** Starts the subgraph on 127.0.0.1:`port` (0: any free port); resolves to {url, stop}. */
export async function startPeopleSubgraph({ data, port = 0, logger = stderrLogger }) {
  const server = new ApolloServer({
    schema: buildSubgraphSchema({ typeDefs: parse(PEOPLE_SDL), resolvers: resolvers(data) }),
    logger,
    // No usage reporting here, so no federated traces (ftv1) either: keep responses plain.
    plugins: [ApolloServerPluginInlineTraceDisabled()],
  });
  const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port } });
  return { url, stop: () => server.stop() };
}

async function main(argv) {
  let file;
  let port = 0;
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--people') file = argv[i + 1];
    else if (argv[i] === '--port') port = Number(argv[i + 1]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!file) throw new Error('usage: node people-subgraph.mjs --people <people.json> [--port <port>]');
  const { url, stop } = await startPeopleSubgraph({ data: readPeople(file), port });
  console.log(JSON.stringify({ url }));
  const shutdown = async () => {
    await stop();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
