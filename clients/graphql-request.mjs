// graphql-request with GraphQL Code Generator's client preset persisted documents: the
// document is the preset's string-mode TypedDocumentString carrying its id in `__meta__.hash`
// (`sha256:<hex>`, from `persistedDocuments: { hashAlgorithm: (text) => "sha256:" +
// sha256(text) }`), and a request middleware sends that id as `documentId` (the GraphQL over
// HTTP persisted documents proposal) instead of the text:
//   https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#persisted-documents
//   https://github.com/graffle-js/graffle/tree/graphql-request (requestMiddleware)
//
// `node graphql-request.mjs manifest` prints the preset's persisted-documents.json for this
// document ({"sha256:<hex>": text}), which the gateway serves as GATEWAY_TRUSTED_DOCUMENTS.
// Options: {"url", "token", "variables"}.
// Prints {"data", "sent": [what each HTTP request carried]}.
import { createHash } from 'node:crypto';
import { GraphQLClient } from 'graphql-request';
import { options, recordingFetch } from './record.mjs';

// What the preset generates in string mode (documentMode: 'string').
class TypedDocumentString extends String {
  constructor(value, __meta__) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  toString() {
    return this.value;
  }
}

const TEXT = `query GraphqlRequestSeats($customerId: ID!, $contractId: ID!) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 2) {
    edges { node { seatId balances { creditTypeId balance } } }
  }
}`;
const hash = `sha256:${createHash('sha256').update(TEXT).digest('hex')}`;
const SeatsDocument = new TypedDocumentString(TEXT, { hash });
const documentIds = { GraphqlRequestSeats: SeatsDocument.__meta__.hash };

if (process.argv[2] === 'manifest') {
  console.log(JSON.stringify({ [hash]: TEXT }));
  process.exit(0);
}

const { url, token, variables } = options();
const sent = [];
const client = new GraphQLClient(url, {
  fetch: recordingFetch(sent),
  headers: { authorization: `Bearer ${token}` },
  // The text goes nowhere: the body names the document by its id.
  requestMiddleware: (request) => {
    const { variables, operationName } = JSON.parse(request.body);
    const documentId = documentIds[operationName];
    return { ...request, body: JSON.stringify({ documentId, variables, operationName }) };
  },
});
const data = await client.request(SeatsDocument, variables);
console.log(JSON.stringify({ data, sent }));
