// Starts GraphiQL on the gateway's page. A file, not an inline script: the page's CSP allows
// scripts from the gateway itself only. Everything page-specific comes from data- attributes
// of #graphiql, which render_page() writes (HTML-escaped) in gateway/graphiql/__init__.py:
//   data-endpoint       the GraphQL endpoint's path, e.g. /graphql
//   data-default-query  the query shown in an empty editor (absent: GraphiQL's own)
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var endpoint = new URL(root.dataset.endpoint || "/graphql", window.location.href).href;
  var props = {
    fetcher: window.GraphiQL.createFetcher({ url: endpoint }),
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false,
  };
  if (root.dataset.defaultQuery !== undefined) {
    props.defaultQuery = root.dataset.defaultQuery;
  }
  window.ReactDOM.createRoot(root).render(window.React.createElement(window.GraphiQL, props));
})();
