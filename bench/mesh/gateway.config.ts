// Hive Gateway serving the supergraph that `mesh-compose` wrote (see mesh.config.ts).
// Kept at the defaults on purpose: the benchmark measures Mesh as it ships. This file exists so
// that `hive-gateway -c gateway.config.ts` does not fall back to reading mesh.config.ts.
import { defineConfig } from '@graphql-hive/gateway';

export const gatewayConfig = defineConfig({});
