// GraphQL Mesh v1 composition of the benchmark's peer: one OpenAPI source, bench/openapi.yaml.
// `mesh-compose -o supergraph.graphql` writes the supergraph that `hive-gateway supergraph` serves.
// The upstream base URL is baked in at composition time from METRONOME_BASE_URL (bench/run.py
// composes on every run, against the stand-in it started).
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadOpenAPISubgraph } from '@omnigraph/openapi';

const endpoint = process.env.METRONOME_BASE_URL;
if (!endpoint) {
  throw new Error('Set METRONOME_BASE_URL to the billing API (or stand-in) to compose against');
}

export const composeConfig = defineConfig({
  subgraphs: [
    {
      sourceHandler: loadOpenAPISubgraph('Metronome', {
        source: '../openapi.yaml',
        endpoint,
        // Forward the caller's own `Authorization: Bearer ...`, as the gateway does.
        operationHeaders: {
          Authorization: '{context.headers.authorization}',
        },
        // The endpoint is a POST that only reads: expose it as a Query field, not a Mutation.
        selectQueryOrMutationField: [
          { type: 'Query', fieldName: 'listSeatBalances' },
        ],
      }),
    },
  ],
});
