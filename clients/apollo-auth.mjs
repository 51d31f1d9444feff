// Apollo Client 4 (@apollo/client) with an error link matching `extensions.code ===
// "UNAUTHENTICATED"`, as Apollo's error handling guide writes it for v4 (ErrorLink and
// CombinedGraphQLErrors; onError is its deprecated alias):
//   https://www.apollographql.com/docs/react/data/error-handling#on-graphql-errors
//   https://www.apollographql.com/docs/react/api/link/apollo-link-error
// Apollo Client 4 reads GraphQL errors only from application/graphql-response+json; from
// another media type a non-2xx answer is a ServerError and the link never sees the code.
//
// Options: {"url", "variables", "tokens": {"<case>": "<JWT>" or null}}: one query per case,
// each with its own client and `Authorization: Bearer <JWT>` (none for null).
// Prints {"<case>": {"data", "error": {"name", "codes"}, "link": [what the error link saw],
// "sent": [what each HTTP request carried]}}.
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, ServerError, gql } from '@apollo/client';
import { ErrorLink } from '@apollo/client/link/error';
import { options, recordingFetch } from './record.mjs';

const SEATS = gql`
  query ApolloSeats($customerId: ID!, $contractId: ID!) {
    seatBalances(customerId: $customerId, contractId: $contractId, first: 2) {
      edges { node { id seatId balances { creditTypeId balance } } }
    }
  }
`;

function described(error) {
  return {
    name: error.name,
    graphQLErrors: CombinedGraphQLErrors.is(error),
    serverError: ServerError.is(error),
    codes: CombinedGraphQLErrors.is(error) ? error.errors.map((e) => e.extensions?.code) : [],
  };
}

async function run(url, token, variables) {
  const link = [];
  const sent = [];
  const errorLink = new ErrorLink(({ error }) => {
    const seen = described(error);
    if (seen.graphQLErrors) {
      // The guide's switch on the code: here the application would send the user to sign in.
      seen.signIn = error.errors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');
    }
    link.push(seen);
  });
  const client = new ApolloClient({
    link: ApolloLink.from([
      errorLink,
      new HttpLink({
        uri: url,
        fetch: recordingFetch(sent),
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
      }),
    ]),
    cache: new InMemoryCache(),
  });
  try {
    const { data } = await client.query({ query: SEATS, variables });
    return { data, error: null, link, sent };
  } catch (error) {
    return { data: null, error: described(error), link, sent };
  }
}

const { url, tokens, variables } = options();
const results = {};
for (const [name, token] of Object.entries(tokens)) {
  results[name] = await run(url, token, variables);
}
console.log(JSON.stringify(results));
