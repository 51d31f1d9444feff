// Builds the GraphiQL page's files in gateway/graphiql/static/ from ui/src/ and ui/node_modules,
// which `npm ci --prefix ui` installs exactly as ui/package-lock.json pins them.
//
//   npm ci --prefix ui && node ui/vendor.mjs           # rebuild the files
//   node ui/vendor.mjs --check                          # exit 1 if they differ from a rebuild
//
// Deterministic: the same lockfile and sources give byte-identical files (esbuild, pinned in
// the lockfile, bundles and minifies without source maps, timestamps or absolute paths).
// Built, all from `'self'` under the page's CSP:
//   graphiql.js, graphiql.css   the page: React 19, GraphiQL 5, @graphiql/plugin-explorer,
//                               graphql-sse's client (subscriptions), Monaco editor,
//                               ui/src/page.jsx, fetcher.js and page.css
//   editor.worker.js            Monaco's web workers as classic scripts (no blob: worker):
//   json.worker.js              the editor's own, the JSON language's (variables, headers)
//   graphql.worker.js           and monaco-graphql's
//   codicon.ttf                 Monaco's icon font
//   THIRD_PARTY_LICENSES.txt    the licence of every npm package whose code is in them
import { existsSync, readFileSync, readdirSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ui = dirname(fileURLToPath(import.meta.url));
const modules = join(ui, "node_modules");
const target = join(ui, "..", "gateway", "graphiql", "static");

const ENTRIES = {
  graphiql: "src/page.jsx",
  "editor.worker": "src/editor.worker.js",
  "json.worker": "src/json.worker.js",
  "graphql.worker": "src/graphql.worker.js",
};
const LICENSES = "THIRD_PARTY_LICENSES.txt";

async function bundle() {
  if (!existsSync(modules)) {
    throw new Error("ui/node_modules is missing: run `npm ci --prefix ui` first");
  }
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: ui,
    entryPoints: ENTRIES,
    outdir: target,
    bundle: true,
    write: false,
    metafile: true,
    minify: true,
    // Classic scripts: the page loads graphiql.js with a plain <script defer>, and Monaco's
    // workers start with `new Worker(url)`.
    format: "iife",
    target: ["es2022", "chrome109", "firefox115", "safari16"],
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"production"' },
    // Licences go to THIRD_PARTY_LICENSES.txt, whole, instead of comments in the bundles.
    legalComments: "none",
    logLevel: "warning",
    charset: "utf8",
    // Monaco's icon font, a file beside the CSS (font-src 'self'), under a fixed name.
    loader: { ".ttf": "file" },
    assetNames: "[name]",
  });
  const files = new Map();
  for (const file of result.outputFiles) {
    files.set(relative(target, file.path), Buffer.from(file.contents));
  }
  files.set(LICENSES, Buffer.from(thirdPartyLicenses(result.metafile)));
  return files;
}

function licenceFiles(dir) {
  return readdirSync(dir)
    .filter((name) => /^(licen[cs]e|copying|notice)/i.test(name))
    .sort();
}

// The packages whose files esbuild put into an output, from its metafile: each input path
// under node_modules names its package (scoped or not, nested or not).
function bundledPackages(metafile) {
  const dirs = new Set();
  for (const output of Object.values(metafile.outputs)) {
    for (const input of Object.keys(output.inputs)) {
      const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
      if (match) dirs.add(match[1]);
    }
  }
  return [...dirs].sort();
}

function thirdPartyLicenses(metafile) {
  const out = [
    "Third-party software in gateway/graphiql/static/",
    "",
    "graphiql.js, graphiql.css and the *.worker.js files are built by ui/vendor.mjs (esbuild)",
    "from the npm packages that ui/package-lock.json pins. Below is every package whose code",
    "they contain, with its licence as published in the package.",
    "",
  ];
  for (const path of bundledPackages(metafile)) {
    const dir = join(ui, path);
    const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const license =
      typeof meta.license === "string" ? meta.license : (meta.license?.type ?? "UNKNOWN");
    out.push("=".repeat(78), `${meta.name}@${meta.version}  (${license})`, "=".repeat(78));
    const files = licenceFiles(dir);
    if (files.length === 0) {
      out.push(`(the package ships no licence file; its package.json says ${license})`, "");
    }
    for (const file of files) {
      out.push(readFileSync(join(dir, file), "utf8").replace(/\r\n/g, "\n").trimEnd(), "");
    }
  }
  return out.join("\n") + "\n";
}

const check = process.argv.includes("--check");
const files = await bundle();
const stale = [];
for (const [name, bytes] of files) {
  const path = join(target, name);
  if (existsSync(path) && readFileSync(path).equals(bytes)) continue;
  stale.push(name);
  if (!check) writeFileSync(path, bytes);
}
for (const name of readdirSync(target).sort()) {
  if (files.has(name)) continue;
  stale.push(`${name} (not built)`);
  if (!check) rmSync(join(target, name));
}
const where = relative(process.cwd(), target) || ".";
if (check && stale.length) {
  console.error(`${where} is stale: ${stale.join(", ")}; run node ui/vendor.mjs`);
  process.exit(1);
}
console.log(check ? `${where} is up to date` : `${where}: ${stale.length} file(s) rewritten`);
