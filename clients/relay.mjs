// Relay (relay-runtime) with persisted queries, as Relay's guide shows: relay-compiler's
// `persistConfig` writes each operation's text to a file under an id (its MD5, by default)
// and leaves only the id in the artifact; the network layer sends `{doc_id, variables}`:
//   https://relay.dev/docs/guides/persisted-queries/
//   https://relay.dev/docs/guides/network-layer/
// The gateway serves that file as its trusted documents (GATEWAY_TRUSTED_DOCUMENTS).
//
// Options: {"url", "token", "artifact": the compiled RelaySeatsQuery.graphql.js, "variables"}.
// Prints {"data": what Relay read from its store, "sent": [what each HTTP request carried]}.
import { pathToFileURL } from 'node:url';
import { Environment, Network, RecordSource, Store, fetchQuery } from 'relay-runtime';
import { options, recordingFetch } from './record.mjs';

const { url, token, artifact, variables } = options();
const query = (await import(pathToFileURL(artifact).href)).default;
const sent = [];
const fetchWithRecord = recordingFetch(sent);

// The guide's fetch function, with the caller's token.
function fetchFn(operation, variables) {
  return fetchWithRecord(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ doc_id: operation.id, variables }),
  }).then((response) => response.json());
}

const environment = new Environment({
  network: Network.create(fetchFn),
  store: new Store(new RecordSource()),
});
const data = await fetchQuery(environment, query, variables).toPromise();
console.log(JSON.stringify({ data, sent }));
