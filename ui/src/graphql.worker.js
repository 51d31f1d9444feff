// monaco-graphql's worker: validation, completion and hover for the query editor.
import "monaco-graphql/esm/graphql.worker.js";
