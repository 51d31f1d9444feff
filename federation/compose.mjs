#!/usr/bin/env node
// The composition check: composes billing's subgraph SDL with the people subgraph's SDL using
// BOTH Apollo's composition (@apollo/composition) and The Guild's composer
// (@theguild/federation-composition). Exits 1, printing every error, when either fails.
//
//   node federation/compose.mjs <billing-sdl-file> [<people-sdl-file>] [--out <supergraph-file>]
//
// <people-sdl-file> defaults to federation/people.graphql. --out writes Apollo's supergraph SDL.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { composeServices as apolloCompose } from '@apollo/composition';
import { composeServices as guildCompose } from '@theguild/federation-composition';
import { parse } from 'graphql';

const here = dirname(fileURLToPath(import.meta.url));

export const PEOPLE_SDL_FILE = join(here, 'people.graphql');

/**
 * Composes `subgraphs` ([{name, url, sdl}]) with both composers.
 * Returns {ok, supergraphSdl, results: [{composer, ok, errors: [string]}]}; `supergraphSdl` is
 * Apollo's (what @apollo/gateway runs), present only when both composers succeed.
 */
export function composeBoth(subgraphs) {
  const results = [];
  let typeDefs;
  try {
    typeDefs = subgraphs.map(({ name, url, sdl }) => ({ name, url, typeDefs: parse(sdl) }));
  } catch (error) {
    const errors = [`a subgraph SDL does not parse: ${error.message}`];
    return { ok: false, results: [{ composer: 'parse', ok: false, errors }] };
  }

  let supergraphSdl;
  try {
    const apollo = apolloCompose(typeDefs);
    const errors = (apollo.errors ?? []).map(describe);
    const hints = (apollo.hints ?? []).map((hint) => hint.toString());
    results.push({ composer: '@apollo/composition', ok: errors.length === 0, errors, hints });
    if (errors.length === 0) supergraphSdl = apollo.supergraphSdl;
  } catch (error) {
    results.push({ composer: '@apollo/composition', ok: false, errors: [`threw: ${error.stack}`] });
  }

  try {
    const guild = guildCompose(typeDefs);
    const errors = (guild.errors ?? []).map(describe);
    results.push({ composer: '@theguild/federation-composition', ok: errors.length === 0, errors });
  } catch (error) {
    results.push({
      composer: '@theguild/federation-composition',
      ok: false,
      errors: [`threw: ${error.stack}`],
    });
  }

  const ok = results.every((result) => result.ok);
  return { ok, supergraphSdl: ok ? supergraphSdl : undefined, results };
}

function describe(error) {
  const code = error.extensions?.code;
  return code ? `[${code}] ${error.message}` : error.message;
}

/** One line per composer and one per error, for people reading CI logs. */
export function report(results) {
  const lines = [];
  for (const { composer, ok, errors, hints = [] } of results) {
    lines.push(`${composer}: ${ok ? 'composes' : `FAILED (${errors.length} error(s))`}`);
    for (const error of errors) lines.push(`  - ${error}`);
    for (const hint of hints) lines.push(`  hint: ${hint}`);
  }
  return lines.join('\n');
}

function main(argv) {
  const files = [];
  let out;
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--out') {
      out = argv[i + 1];
      i += 1;
      if (!out) usage('--out needs a file');
    } else if (argv[i] === '-h' || argv[i] === '--help') {
      usage();
    } else if (argv[i].startsWith('--')) {
      usage(`unknown option ${argv[i]}`);
    } else {
      files.push(argv[i]);
    }
  }
  if (files.length < 1 || files.length > 2) usage('give the billing SDL file, and optionally the people SDL file');
  const [billingFile, peopleFile = PEOPLE_SDL_FILE] = files;

  const subgraphs = [
    // The URLs only end up in the supergraph's join__graph; the harness composes with real ones.
    { name: 'billing', url: 'http://billing.invalid/graphql', sdl: readFileSync(billingFile, 'utf8') },
    { name: 'people', url: 'http://people.invalid/', sdl: readFileSync(peopleFile, 'utf8') },
  ];
  const { ok, supergraphSdl, results } = composeBoth(subgraphs);
  const text = report(results);
  if (!ok) {
    console.error(`${billingFile} + ${peopleFile} do not compose:\n${text}`);
    process.exit(1);
  }
  console.log(`${billingFile} + ${peopleFile}:\n${text}`);
  if (out) {
    writeFileSync(out, supergraphSdl);
    console.log(`supergraph SDL (Apollo's) written to ${out}`);
  }
}

function usage(problem) {
  if (problem) console.error(problem);
  console.error('usage: node compose.mjs <billing-sdl-file> [<people-sdl-file>] [--out <supergraph-file>]');
  process.exit(problem ? 2 : 0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
