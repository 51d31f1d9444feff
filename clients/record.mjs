// Shared by the recipe scripts: their one argument, and a fetch that keeps what was sent.
//
// Each script is run as `node <script>.mjs '<JSON>'` (the gateway's URL, a token, variables)
// and prints one JSON object on stdout for tests/test_clients.py.

/** The script's JSON argument. */
export function options() {
  const raw = process.argv[2];
  if (!raw) {
    console.error(`usage: node ${process.argv[1]} '{"url": "http://127.0.0.1:8000/graphql", ...}'`);
    process.exit(2);
  }
  return JSON.parse(raw);
}

/**
 * A `fetch` for the client library's `fetch` option: the global fetch, which also appends to
 * `sent` what each request carried (method, GraphQL parameters from the body or the query
 * string, Accept) and what came back (status, content type).
 */
export function recordingFetch(sent) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    let params;
    if (method === 'GET') {
      params = Object.fromEntries(
        [...url.searchParams].map(([name, value]) =>
          ['variables', 'extensions'].includes(name) ? [name, JSON.parse(value)] : [name, value],
        ),
      );
    } else {
      params = JSON.parse(init.body);
    }
    const response = await fetch(input, init);
    sent.push({
      method,
      params,
      accept: headers.get('accept'),
      status: response.status,
      contentType: response.headers.get('content-type'),
    });
    return response;
  };
}
