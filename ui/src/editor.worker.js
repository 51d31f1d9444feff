// Monaco's own worker (diffs, links, word completion), built as a file of its own.
import "monaco-editor/esm/vs/editor/editor.worker.js";
