// The gateway's GraphiQL page: GraphiQL 5 with the explorer plugin open, bundled by
// ui/vendor.mjs into gateway/graphiql/static/graphiql.js (+ graphiql.css). A file, not an
// inline script: the page's CSP allows scripts from the gateway itself only. Everything
// page-specific comes from data- attributes of #graphiql, which render_page() writes
// (HTML-escaped) in gateway/graphiql/__init__.py:
//   data-endpoint        the GraphQL endpoint's path, e.g. /graphql
//   data-tabs            JSON: the tabs a first visit opens with ([{query, variables?}])
//   data-editor-worker   URLs of Monaco's web workers (files on the gateway, `worker-src
//   data-json-worker     'self'`): the editor's own, the JSON language's (variables and
//   data-graphql-worker  headers) and monaco-graphql's (validation, completion)
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { GraphiQL } from "graphiql";
import { createRoot } from "react-dom/client";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./page.css";
// Queries as createGraphiQLFetcher sends them; subscriptions over Server-Sent Events.
import { createFetcher } from "./fetcher.js";

const root = document.getElementById("graphiql");
const data = root.dataset;

// Monaco asks for a worker per language; each is a classic-script file built beside this one.
// Never a blob: or data: URL, and nothing evaluated from a string.
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const url = { json: data.jsonWorker, graphql: data.graphqlWorker }[label] ?? data.editorWorker;
    return new Worker(new URL(url, window.location.href), { name: label });
  },
};

const explorer = explorerPlugin();
const endpoint = new URL(data.endpoint || "/graphql", window.location.href).href;
const tabs = data.tabs ? JSON.parse(data.tabs) : undefined;

createRoot(root).render(
  <GraphiQL
    fetcher={createFetcher(endpoint)}
    plugins={[explorer]}
    visiblePlugin={explorer}
    defaultTabs={tabs}
    defaultEditorToolsVisibility={true}
    shouldPersistHeaders={false}
  />,
);
