#!/usr/bin/env node
// Loads a schema file as client tooling does, with graphql-js's own `buildSchema` (what GraphQL
// Code Generator, Relay's compiler and urql's graphcache introspection build on), and validates
// documents against it.
//
//   node federation/load-schema.mjs <schema-file> [<document-file>...]
//
// Prints one line of JSON, {"types": [...], "queryFields": [...], "directives": [...]}, and
// exits 0; exits 1, saying why on stderr, when the schema does not build or is invalid, or a
// document does not validate against it.
import { readFileSync } from 'node:fs';

import { assertValidSchema, buildSchema, parse, validate } from 'graphql';

function main(argv) {
  if (argv.length < 1) {
    console.error('usage: node load-schema.mjs <schema-file> [<document-file>...]');
    process.exit(2);
  }
  const [schemaFile, ...documentFiles] = argv;
  let schema;
  try {
    schema = buildSchema(readFileSync(schemaFile, 'utf8'));
    assertValidSchema(schema);
  } catch (error) {
    console.error(`${schemaFile} does not load: ${error.message}`);
    process.exit(1);
  }
  for (const file of documentFiles) {
    const errors = validate(schema, parse(readFileSync(file, 'utf8')));
    if (errors.length > 0) {
      console.error(`${file} is not valid against ${schemaFile}:`);
      for (const error of errors) console.error(`  - ${error.message}`);
      process.exit(1);
    }
  }
  const types = Object.keys(schema.getTypeMap()).filter((name) => !name.startsWith('__'));
  const queryFields = Object.keys(schema.getQueryType()?.getFields() ?? {});
  const directives = schema.getDirectives().map((directive) => directive.name);
  process.stdout.write(`${JSON.stringify({ types: types.sort(), queryFields, directives })}\n`);
}

main(process.argv.slice(2));
