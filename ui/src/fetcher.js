// GraphiQL's fetcher for the gateway. Subscriptions go over graphql-sse in "distinct
// connections" mode: one POST to the endpoint with `Accept: text/event-stream` per
// subscription, answered with `next` events and a `complete`. A plain fetch to the page's
// own origin, so the CSP's `connect-src 'self'` covers it (a WebSocket URL would need its
// own ws: source). Everything else goes exactly as createGraphiQLFetcher sends it.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { getOperationAST, parse } from "graphql";
import { createClient } from "graphql-sse";

export function createFetcher(url) {
  const http = createGraphiQLFetcher({ url });
  return (params, opts) =>
    isSubscription(params)
      ? subscribe(url, params, opts?.headers)
      : // Without GraphiQL's documentAST: it lags the editor by a debounce, and
        // createGraphiQLFetcher refuses a subscription it sees there (it knows only
        // WebSockets). The text that is sent decides, here.
        http(params, { ...opts, documentAST: undefined });
}

function isSubscription({ query, operationName }) {
  try {
    return getOperationAST(parse(query), operationName || null)?.operation === "subscription";
  } catch {
    return false; // a syntax error: the gateway answers it as it answers any query
  }
}

// The headers are the Headers editor's, as for a query: the token tab's Authorization
// (a stand-in token, a billing token, a JWT) authenticates a subscription the same way.
function subscribe(url, params, headers) {
  const client = createClient({
    url,
    singleConnection: false,
    // graphql-sse retries every refusal (a 401 too) with backoff for about a minute; in an
    // IDE the answer should show at once, and running again is one click.
    retryAttempts: 0,
    headers: { ...headers },
  });
  const results = client.iterate(params);
  return {
    [Symbol.asyncIterator]() {
      return this; // GraphiQL's stop asks the iterable for its iterator again: the same one
    },
    async next() {
      try {
        return await results.next();
      } catch (error) {
        const answer = await refusal(error);
        if (answer === undefined) throw error;
        return { done: false, value: answer };
      }
    },
    // Stop, a new run, a tab change: graphql-sse aborts the request now (its own return,
    // unlike a generator's, does not wait for the next event, which may be minutes away).
    return() {
      return results.return();
    },
  };
}

// A refusal before any event (HTTP 4xx: UNAUTHENTICATED, RATE_LIMITED, a validation error)
// carries the gateway's GraphQL errors as JSON: show them as a query's would be shown,
// rather than graphql-sse's "Server responded with 401".
async function refusal(error) {
  if (!error?.response) return undefined;
  try {
    return JSON.parse(await error.response.text());
  } catch {
    return undefined;
  }
}
