// Regenerates the vendored GraphiQL files in gateway/graphiql/static/ from ui/node_modules,
// which `npm ci --prefix ui` installs exactly as ui/package-lock.json pins them.
//
//   npm ci --prefix ui && node ui/vendor.mjs           # rewrite the vendored files
//   node ui/vendor.mjs --check                          # exit 1 if they differ from node_modules
//
// Deterministic: the same lockfile gives byte-identical files. The browser builds are copied as
// published, except that a trailing `//# sourceMappingURL=` comment is dropped (the maps are
// not vendored, and a browser's devtools would otherwise ask the gateway for them). The
// gateway's own files in that folder (OWN_FILES) are not touched.
import { existsSync, readFileSync, readdirSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ui = dirname(fileURLToPath(import.meta.url));
const modules = join(ui, "node_modules");
const target = join(ui, "..", "gateway", "graphiql", "static");

// What the page loads, in order: React 18 and ReactDOM as UMD globals, then GraphiQL 3's UMD
// build (which bundles graphql-js, CodeMirror 5, the docs explorer and the rest of its code).
const COPIES = [
  ["react/umd/react.production.min.js", "react.production.min.js"],
  ["react-dom/umd/react-dom.production.min.js", "react-dom.production.min.js"],
  ["graphiql/graphiql.min.js", "graphiql.min.js"],
  ["graphiql/graphiql.min.css", "graphiql.min.css"],
];
const LICENSES = "THIRD_PARTY_LICENSES.txt";
// Written by hand and committed as they are: the page's start-up script and its layout.
const OWN_FILES = new Set(["init.js", "page.css"]);

function stripSourceMap(text) {
  return text.replace(/\n?\/[/*]# sourceMappingURL=[^\n]*\s*$/, "\n");
}

function licenceFiles(dir) {
  return readdirSync(dir)
    .filter((name) => /^(licen[cs]e|copying|notice)/i.test(name))
    .sort();
}

// Every package the lockfile installs, with its licence text: the vendored builds bundle code
// from many of them (GraphiQL's dependency tree), so all are listed.
function thirdPartyLicenses() {
  const lock = JSON.parse(readFileSync(join(ui, "package-lock.json"), "utf8"));
  const entries = Object.keys(lock.packages)
    .filter((path) => path.startsWith("node_modules/") && !lock.packages[path].dev)
    .sort();
  const out = [
    "Third-party software in gateway/graphiql/static/",
    "",
    "The files react.production.min.js, react-dom.production.min.js, graphiql.min.js and",
    "graphiql.min.css are copied from the npm packages react, react-dom and graphiql; the",
    "GraphiQL build bundles code from its dependencies. Below is every package that",
    "ui/package-lock.json installs, with its licence as published in the package.",
    "",
  ];
  for (const path of entries) {
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

function expected() {
  if (!existsSync(modules)) {
    throw new Error("ui/node_modules is missing: run `npm ci --prefix ui` first");
  }
  const files = new Map();
  for (const [from, to] of COPIES) {
    files.set(to, stripSourceMap(readFileSync(join(modules, from), "utf8")));
  }
  files.set(LICENSES, thirdPartyLicenses());
  return files;
}

const check = process.argv.includes("--check");
const files = expected();
const stale = [];
for (const [name, text] of files) {
  const path = join(target, name);
  const current = existsSync(path) ? readFileSync(path, "utf8") : null;
  if (current === text) continue;
  stale.push(name);
  if (!check) writeFileSync(path, text);
}
for (const name of readdirSync(target).sort()) {
  if (files.has(name) || OWN_FILES.has(name)) continue;
  stale.push(`${name} (not vendored)`);
  if (!check) rmSync(join(target, name));
}
const where = relative(process.cwd(), target) || ".";
if (check && stale.length) {
  console.error(`${where} is stale: ${stale.join(", ")}; run node ui/vendor.mjs`);
  process.exit(1);
}
console.log(check ? `${where} is up to date` : `${where}: ${stale.length} file(s) rewritten`);
