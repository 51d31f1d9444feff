// Apollo Client 4 (@apollo/client) with its persisted queries link, hashing as GraphQL Code
// Generator's client preset ids read (`sha256:<hex>`): `generateHash` given the document, as
// Apollo's API reference shows it (print, then SHA-256), with the preset's prefix:
//   https://www.apollographql.com/docs/react/api/link/persisted-queries
//   https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#persisted-documents
//
// Two clients in turn (two page loads): the first sends the hash alone, is told
// PersistedQueryNotFound and sends the hash with the text; the second's hash alone answers.
// Options: {"url", "token", "variables", "get": false | true (useGETForHashedQueries)}.
// Prints {"results": [{"data", "error"}, ...], "sent": [what each HTTP request carried]}.
import { createHash } from 'node:crypto';
import { print } from 'graphql';
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { options, recordingFetch } from './record.mjs';

const SEATS = gql`
  query ApolloPersistedSeats($customerId: ID!, $contractId: ID!) {
    seatBalances(customerId: $customerId, contractId: $contractId, first: 2) {
      edges { node { id seatId balances { creditTypeId balance } } }
    }
  }
`;

const { url, token, variables, get = false } = options();
const sent = [];

function client() {
  return new ApolloClient({
    link: ApolloLink.from([
      new PersistedQueryLink({
        useGETForHashedQueries: get,
        generateHash: (document) => `sha256:${createHash('sha256').update(print(document)).digest('hex')}`,
      }),
      new HttpLink({ uri: url, fetch: recordingFetch(sent), headers: { authorization: `Bearer ${token}` } }),
    ]),
    cache: new InMemoryCache(),
  });
}

const results = [];
for (let load = 0; load < 2; load += 1) {
  try {
    const { data } = await client().query({ query: SEATS, variables });
    results.push({ data, error: null });
  } catch (error) {
    const codes = CombinedGraphQLErrors.is(error) ? error.errors.map((e) => e.extensions?.code) : [];
    results.push({ data: null, error: { name: error.name, message: error.message, codes } });
  }
}
console.log(JSON.stringify({ results, sent }));
