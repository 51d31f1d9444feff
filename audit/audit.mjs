// graphql-http's GraphQL-over-HTTP server audit against a running gateway.
// Usage: node audit/audit.mjs http://127.0.0.1:8000/graphql
// Prints one JSON object: the counts per status and every result that is not "ok" (id, name,
// status, reason, and the response's status and content type), for tests/test_graphql_over_http.py.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
const failures = [];
for (const result of results) {
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    failures.push({
      id: result.id,
      name: result.name,
      status: result.status,
      reason: result.reason,
      responseStatus: result.response.status,
      contentType: result.response.headers.get('content-type'),
    });
  }
}
console.log(JSON.stringify({ total: results.length, counts, failures }, null, 2));
