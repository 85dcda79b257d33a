// GraphQL Code Generator: typed documents for every operation in
// src/operations/*.graphql, from the router's public API schema.
// `npm run codegen` (also the first step of `npm run build`).
//
// The documents are persisted: src/gql/persisted-documents.json maps each
// document's SHA-256 (hex, an APQ `sha256Hash`) to its exact text, and the
// storefront sends only that id (src/client.ts). The router that serves the
// storefront registers these documents (router/src/storefront.rs), and
// schema/operations.mjs puts them in the operations registry, so the
// storefront also runs under `PERSISTED_QUERIES_SAFELIST=true`. `__typename`
// is added to every selection set, as urql's document cache needs it:
// the registered text is then what urql would send anyway.
import { createHash } from 'node:crypto';
import type { CodegenConfig } from '@graphql-codegen/cli';
import { addTypenameSelectionDocumentTransform } from '@graphql-codegen/client-preset';

const config: CodegenConfig = {
  schema: '../schema/api.graphql',
  documents: ['src/operations/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: {
          hashAlgorithm: (text: string) => createHash('sha256').update(text).digest('hex'),
        },
      },
      documentTransforms: [addTypenameSelectionDocumentTransform],
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { Decimal: 'string', DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
