// urql (@urql/core) with its persisted exchange (@urql/exchange-persisted), as GraphQL Code
// Generator's client preset recipe sets it up, sending the preset's `sha256:`-prefixed
// document id as the APQ hash:
//   https://nearform.com/open-source/urql/docs/advanced/persistence-and-uploads/
//   https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#persisted-documents
// The id is what the preset writes with `persistedDocuments: { hashAlgorithm: (text) =>
// "sha256:" + sha256(text) }` (its function form), here computed from the text urql sends.
//
// Two clients in turn (two page loads): the first sends the hash alone, is told
// PersistedQueryNotFound and sends the hash with the text; the second's hash alone answers.
// Options: {"url", "token", "variables", "get": false | true (preferGetForPersistedQueries)}.
// Prints {"results": [{"data", "error"}, ...], "sent": [what each HTTP request carried]}.
import { createHash } from 'node:crypto';
import { cacheExchange, createClient, fetchExchange, gql } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import { options, recordingFetch } from './record.mjs';

const SEATS = gql`
  query UrqlSeats($customerId: ID!, $contractId: ID!) {
    seatBalances(customerId: $customerId, contractId: $contractId, first: 2) {
      edges { node { id seatId balances { creditTypeId balance } } }
    }
  }
`;

const { url, token, variables, get = false } = options();
const sent = [];

function client() {
  return createClient({
    url,
    fetch: recordingFetch(sent),
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      cacheExchange,
      persistedExchange({
        preferGetForPersistedQueries: get,
        generateHash: async (query) => `sha256:${createHash('sha256').update(query).digest('hex')}`,
      }),
      fetchExchange,
    ],
  });
}

const results = [];
for (let load = 0; load < 2; load += 1) {
  const { data, error } = await client().query(SEATS, variables).toPromise();
  results.push({
    data: data ?? null,
    error: error ? { message: error.message, codes: error.graphQLErrors.map((e) => e.extensions?.code) } : null,
  });
}
console.log(JSON.stringify({ results, sent }));
